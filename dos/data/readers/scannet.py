"""ScanNet v2 / ScanNet200, in Pointcept's layout or mmdet3d's .bin layout (picked from the files).

Pointcept: <root>/{train,val,test}/sceneXXXX_XX/ with coord.npy, color.npy, normal.npy,
segment20.npy / segment200.npy (training ids, -1 ignore), instance.npy. feat = rgb in [0, 1] + normal
(C = 6; C = 3 when a room has no normal.npy). `classes` (20 or 200) picks the label file. test is
unlabelled; train and val need the segment file.

mmdet3d: <root>/points/, semantic_mask/ (raw NYU40 ids, mapped to the 20 classes), instance_mask/,
splits from the *_infos_<split>.pkl files at the root (see readers/mmdet3d.py). feat = rgb (C = 3).

synthetic-rooms is the Pointcept layout with `label_config="labels.yaml"` at the root, giving
`names` (20 classes), `names200` and its `head` / `common` / `tail` groups.
"""

from __future__ import annotations

from pathlib import Path

from dos.data.errors import DatasetError
from dos.data.labels import label_spec_from_file, load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import check_count, has_dir, has_file, load_ids, require_dir, sorted_names
from dos.data.readers.mmdet3d import indoor_scene_ids, load_indoor_scene
from dos.data.readers.pointcept import load_room
from dos.data.scan import Scan

POINTCEPT_SPLITS = ("train", "val", "test")
UNLABELLED_SPLITS = ("test",)


class ScanNetReader:
    def __init__(self, root: str | Path, classes: int = 20, layout: str | None = None,
                 label_config: str | Path | None = None):
        self.root = require_dir(Path(root), "dataset root")
        self.classes = int(classes)
        if self.classes not in (20, 200):
            raise DatasetError(f"{self.root}: ScanNet has 20 or 200 classes, not {classes}")
        self.layout = layout or ("mmdet3d" if has_dir(self.root / "points", "points") else "pointcept")
        if self.layout not in ("pointcept", "mmdet3d"):
            raise DatasetError(f"{self.root}: unknown ScanNet layout {layout!r} (pointcept or mmdet3d)")
        if self.layout == "mmdet3d" and self.classes != 20:
            raise DatasetError(f"{self.root}: the mmdet3d .bin layout is read with the 20 NYU40-derived classes only")
        if label_config is not None:
            names_key = "names" if self.classes == 20 else "names200"
            self.label_spec = label_spec_from_file(self.root / label_config, names_key)
        else:
            self.label_spec = load_label_spec(f"scannet{self.classes}")
        self._mmdet3d_scenes = indoor_scene_ids(self.root) if self.layout == "mmdet3d" else {}

    def splits(self) -> list[str]:
        if self.layout == "mmdet3d":
            return list(self._mmdet3d_scenes)
        present = [split for split in POINTCEPT_SPLITS if has_dir(self.root / split, "split folder")]
        if not present:
            raise DatasetError(f"{self.root}: none of the split folders {', '.join(POINTCEPT_SPLITS)} exists")
        return present

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        if self.layout == "mmdet3d":
            return list(self._mmdet3d_scenes[split])
        return sorted_names(self.root / split, dirs=True)

    def load(self, split: str, scan_id: str) -> Scan:
        check_split(self, split)
        if self.layout == "mmdet3d":
            return self._load_mmdet3d(split, scan_id)
        folder = self.root / split / scan_id
        coord, feat, extra = load_room(folder)
        scan = Scan(name=scan_id, coord=coord, feat=feat, extra=extra)
        segment_path = folder / f"segment{self.classes}.npy"
        present = has_file(segment_path, "label file")
        if split in UNLABELLED_SPLITS and not present:
            return scan
        if not present:
            raise DatasetError(f"{segment_path}: label file missing for a room of labelled split {split!r}")
        segment = check_count(load_ids(segment_path, "labels"), len(coord), segment_path, "labels")
        scan.segment = self.label_spec.check_train_ids(segment, segment_path)
        return scan

    def _load_mmdet3d(self, split: str, scan_id: str) -> Scan:
        coord, rgb, semantic, instance = load_indoor_scene(self.root, scan_id)
        scan = Scan(name=scan_id, coord=coord, feat=rgb, extra={"feat_names": ["r", "g", "b"]})
        if instance is not None:
            scan.extra["instance"] = instance
        if semantic is None:
            if split not in UNLABELLED_SPLITS:
                raise DatasetError(f"{self.root / 'semantic_mask'}: folder missing for labelled split {split!r}")
            return scan
        mask_path = self.root / "semantic_mask" / f"{scan_id}.bin"
        scan.segment = self.label_spec.map_raw(semantic, mask_path)
        scan.extra["raw_segment"] = semantic
        return scan
