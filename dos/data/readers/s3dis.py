"""S3DIS, in Pointcept's layout or mmdet3d's .bin layout (picked from the files).

Pointcept: <root>/Area_{1..6}/<room>/ with coord.npy, color.npy, segment.npy (13-class index,
-1 ignore), instance.npy, optionally normal.npy. Scan ids are "Area_N/<room>". feat = rgb in [0, 1]
(+ normal when present: C = 3 or 6).

mmdet3d: <root>/points/Area_N_<room>.bin, semantic_mask/ (13-class index), instance_mask/; feat = rgb
(C = 3). Scan ids are the file stems.

Splits follow the usual protocol from the label spec: Area 5 is val, the other areas train. Every
split is labelled.
"""

from __future__ import annotations

import re
from pathlib import Path

from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import check_count, has_dir, has_file, load_ids, require_dir, sorted_names
from dos.data.readers.mmdet3d import load_indoor_scene
from dos.data.readers.pointcept import load_room
from dos.data.scan import Scan


class S3disReader:
    def __init__(self, root: str | Path, layout: str | None = None):
        self.root = require_dir(Path(root), "dataset root")
        self.layout = layout or ("mmdet3d" if has_dir(self.root / "points", "points") else "pointcept")
        if self.layout not in ("pointcept", "mmdet3d"):
            raise DatasetError(f"{self.root}: unknown S3DIS layout {layout!r} (pointcept or mmdet3d)")
        self.label_spec = load_label_spec("s3dis")
        self._area_split = {area: split for split, areas in self.label_spec.splits.items() for area in areas}
        self._scans: dict[str, list[str]] = {split: [] for split in self.label_spec.splits}
        for area, room in self._rooms():
            if area not in self._area_split:
                raise DatasetError(f"{self.root}: {area}/{room} is in no split (areas: {', '.join(self._area_split)})")
            self._scans[self._area_split[area]].append(f"{area}/{room}" if self.layout == "pointcept" else room)

    def _rooms(self) -> list[tuple[str, str]]:
        if self.layout == "mmdet3d":
            points = require_dir(self.root / "points", "points")
            rooms = sorted_names(points, ".bin")
            if not rooms:
                raise DatasetError(f"{points}: no .bin rooms")
            areas = [re.match(r"(Area_\d+)_", room) for room in rooms]
            for room, area in zip(rooms, areas):
                if area is None:
                    raise DatasetError(f"{points / (room + '.bin')}: name does not start with Area_<n>_")
            return [(area.group(1), room) for area, room in zip(areas, rooms)]
        areas = [name for name in sorted_names(self.root, dirs=True) if name.startswith("Area_")]
        if not areas:
            raise DatasetError(f"{self.root}: no Area_<n> folders")
        return [(area, room) for area in areas for room in sorted_names(self.root / area, dirs=True)]

    def splits(self) -> list[str]:
        return [split for split, scans in self._scans.items() if scans]

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        return list(self._scans[split])

    def load(self, split: str, scan_id: str) -> Scan:
        check_split(self, split)
        if self.layout == "mmdet3d":
            coord, rgb, semantic, instance = load_indoor_scene(self.root, scan_id)
            if semantic is None:
                raise DatasetError(f"{self.root / 'semantic_mask'}: folder missing; every S3DIS split is labelled")
            scan = Scan(name=scan_id, coord=coord, feat=rgb, extra={"feat_names": ["r", "g", "b"]})
            if instance is not None:
                scan.extra["instance"] = instance
            scan.segment = self.label_spec.map_raw(semantic, self.root / "semantic_mask" / f"{scan_id}.bin")
            return scan
        folder = self.root / scan_id
        coord, feat, extra = load_room(folder)
        segment_path = folder / "segment.npy"
        if not has_file(segment_path, "label file"):
            raise DatasetError(f"{segment_path}: label file missing; every S3DIS split is labelled")
        segment = check_count(load_ids(segment_path, "labels"), len(coord), segment_path, "labels")
        return Scan(name=scan_id, coord=coord, feat=feat,
                    segment=self.label_spec.check_train_ids(segment, segment_path), extra=extra)
