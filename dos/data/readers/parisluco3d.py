"""ParisLuco3D: one PLY file per LiDAR scan, with per-point x, y, z, intensity and a label field.

Layout read here: <root>/<split>/*.ply (any sub-folder holding .ply files is a split, e.g. train,
val, test), and <root>/*.ply as the split "all". Scan ids are the file stems.

Labels: the first of LABEL_FIELDS present (or `label_field=`), raw ids mapped by the parisluco3d
label spec (SemanticKITTI raw ids -> its 19 classes; see labels/parisluco3d.yaml for the caveat) or
by `label_config=` a YAML with `names` and `learning_map`. feat = [intensity] as stored (C = 1),
from the first of INTENSITY_FIELDS present (or `intensity_field=`). A split named "test" may be
unlabelled; in every other split each scan must carry the label field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import label_spec_from_file, load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import check_coord, require_dir, sorted_names
from dos.data.readers.ply import read_ply_vertices
from dos.data.scan import Scan

LABEL_FIELDS = ("label", "semantic", "class", "scalar_label", "scalar_class")
INTENSITY_FIELDS = ("intensity", "reflectance", "remission", "scalar_intensity")
UNLABELLED_SPLITS = ("test",)
ROOT_SPLIT = "all"


def _pick(fields: dict, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in fields else None
    return next((name for name in candidates if name in fields), None)


class ParisLuco3dReader:
    def __init__(self, root: str | Path, label_field: str | None = None, intensity_field: str | None = None,
                 label_config: str | Path | None = None):
        self.root = require_dir(Path(root), "dataset root")
        self.label_field = label_field
        self.intensity_field = intensity_field
        self.label_spec = label_spec_from_file(self.root / label_config) if label_config \
            else load_label_spec("parisluco3d")
        self._folders = {name: self.root / name for name in sorted_names(self.root, dirs=True)
                         if sorted_names(self.root / name, ".ply")}
        if sorted_names(self.root, ".ply"):
            self._folders[ROOT_SPLIT] = self.root
        if not self._folders:
            raise DatasetError(f"{self.root}: no .ply scans at the root or in its sub-folders")

    def splits(self) -> list[str]:
        return list(self._folders)

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        return sorted_names(self._folders[split], ".ply")

    def load(self, split: str, scan_id: str) -> Scan:
        check_split(self, split)
        path = self._folders[split] / f"{scan_id}.ply"
        fields = read_ply_vertices(path)
        missing = [axis for axis in "xyz" if axis not in fields]
        if missing:
            raise DatasetError(f"{path}: PLY vertices lack {', '.join(missing)} (fields: {', '.join(fields)})")
        coord = check_coord(np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(np.float32), path)
        intensity = _pick(fields, self.intensity_field, INTENSITY_FIELDS)
        if intensity is None:
            raise DatasetError(f"{path}: no intensity field (looked for {self.intensity_field or INTENSITY_FIELDS}; "
                               f"fields: {', '.join(fields)})")
        scan = Scan(name=scan_id, coord=coord, feat=fields[intensity].astype(np.float32).reshape(-1, 1),
                    extra={"feat_names": [intensity]})
        label = _pick(fields, self.label_field, LABEL_FIELDS)
        if label is None:
            if split in UNLABELLED_SPLITS:
                return scan
            raise DatasetError(f"{path}: no per-point label field in a scan of labelled split {split!r} (looked "
                               f"for {self.label_field or LABEL_FIELDS}; fields: {', '.join(fields)})")
        raw = fields[label]
        if not np.array_equal(raw, np.round(raw)):
            raise DatasetError(f"{path}: label field {label!r} holds non-integer values")
        raw = raw.astype(np.int64)
        scan.segment = self.label_spec.map_raw(raw, path)
        scan.extra["raw_segment"] = raw
        return scan
