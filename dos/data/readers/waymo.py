"""Waymo Open Dataset segmentation in Pointcept's preprocessed layout.

<root>/{training,validation,testing}/<segment>/<frame>/coord.npy (float32 [N, 3]), strength.npy
([N] or [N, 1], tanh of the intensity), segment.npy (int, the raw Waymo class minus one: -1 =
undefined, 0..21 the 22 classes). feat = [strength] (C = 1). Scan ids are "<segment>/<frame>".
The folders map to the splits train / val / test; test is unlabelled, the others need segment.npy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import (check_coord, check_count, has_dir, has_file, load_ids, load_npy, require_dir,
                                    sorted_names)
from dos.data.scan import Scan

SPLIT_FOLDERS = {"train": "training", "val": "validation", "test": "testing"}
UNLABELLED_SPLITS = ("test",)


class WaymoReader:
    def __init__(self, root: str | Path):
        self.root = require_dir(Path(root), "dataset root")
        self.label_spec = load_label_spec("waymo")

    def splits(self) -> list[str]:
        present = [split for split, folder in SPLIT_FOLDERS.items()
                   if has_dir(self.root / folder, "split folder")]
        if not present:
            raise DatasetError(f"{self.root}: none of the split folders {', '.join(SPLIT_FOLDERS.values())} exists")
        return present

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        folder = self.root / SPLIT_FOLDERS[split]
        return [f"{segment}/{frame}" for segment in sorted_names(folder, dirs=True)
                for frame in sorted_names(folder / segment, dirs=True)]

    def load(self, split: str, scan_id: str) -> Scan:
        check_split(self, split)
        folder = self.root / SPLIT_FOLDERS[split] / scan_id
        require_dir(folder, "frame")
        coord = check_coord(load_npy(folder / "coord.npy", "coordinates", 3), folder / "coord.npy")
        strength = check_count(load_npy(folder / "strength.npy", "strength", 1), len(coord),
                               folder / "strength.npy", "strength values")
        scan = Scan(name=scan_id, coord=coord, feat=strength.astype(np.float32).reshape(-1, 1),
                    extra={"feat_names": ["strength"]})
        segment_path = folder / "segment.npy"
        present = has_file(segment_path, "label file")
        if split in UNLABELLED_SPLITS and not present:
            return scan
        if not present:
            raise DatasetError(f"{segment_path}: label file missing for a frame of labelled split {split!r}")
        stored = check_count(load_ids(segment_path, "labels"), len(coord), segment_path, "labels")
        raw = stored + 1  # the file holds raw - 1
        scan.segment = self.label_spec.map_raw(raw, segment_path)
        scan.extra["raw_segment"] = raw
        return scan
