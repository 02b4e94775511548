"""SemanticKITTI: sequences/XX/velodyne/NNNNNN.bin + sequences/XX/labels/NNNNNN.label.

velodyne: float32 [N, 4] x, y, z, remission. labels: uint32 [N], semantic id = label & 0xFFFF,
instance id = label >> 16. feat = [remission] (C = 1). Scan ids are "XX/NNNNNN".

Splits are lists of sequence folders, taken from the label spec: the official one (train 00-07, 09, 10;
val 08; test 11-21) or a label-config YAML given as `label_config` (a path, relative to the root or
absolute) with its own `names`, `learning_map` and optionally `splits`. The synthetic-lidar format
is this reader with label_config="labels.yaml". The split named "test" is unlabelled; every other
split must have a label file for every scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import LabelSpec, label_spec_from_file, load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import check_coord, check_count, has_dir, has_file, read_records, require_dir, sorted_names
from dos.data.scan import Scan

UNLABELLED_SPLITS = ("test",)


class SemanticKittiReader:
    def __init__(self, root: str | Path, label_config: str | Path | None = None):
        self.root = require_dir(Path(root), "dataset root")
        self.sequences_dir = require_dir(self.root / "sequences", "sequences")
        if label_config is None:
            self.label_spec: LabelSpec = load_label_spec("semantickitti")
        else:
            self.label_spec = label_spec_from_file(self.root / label_config)
        if self.label_spec.lookup is None:
            raise DatasetError(f"{self.root / (label_config or '')}: label config has no learning_map")
        self._split_sequences = dict(self.label_spec.splits or load_label_spec("semantickitti").splits)

    def _present_sequences(self, split: str) -> list[str]:
        return [seq for seq in self._split_sequences.get(split, ())
                if has_dir(self.sequences_dir / seq, "sequence")]

    def splits(self) -> list[str]:
        present = [split for split in self._split_sequences if self._present_sequences(split)]
        if not present:
            wanted = sorted({seq for seqs in self._split_sequences.values() for seq in seqs})
            raise DatasetError(f"{self.sequences_dir}: none of the sequence folders {', '.join(wanted)} exists")
        return present

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        ids = []
        for seq in self._present_sequences(split):
            velodyne = require_dir(self.sequences_dir / seq / "velodyne", "velodyne")
            ids += [f"{seq}/{frame}" for frame in sorted_names(velodyne, ".bin")]
        return ids

    def load(self, split: str, scan_id: str) -> Scan:
        seq, frame = scan_id.split("/")
        points_path = self.sequences_dir / seq / "velodyne" / f"{frame}.bin"
        points = read_records(points_path, np.float32, 4, "velodyne scan")
        coord = check_coord(points[:, :3], points_path)
        scan = Scan(name=scan_id, coord=coord, feat=np.ascontiguousarray(points[:, 3:4]),
                    extra={"feat_names": ["remission"]})
        label_path = self.sequences_dir / seq / "labels" / f"{frame}.label"
        present = has_file(label_path, "label file")
        if split in UNLABELLED_SPLITS and not present:
            return scan
        if not present:
            raise DatasetError(f"{label_path}: label file missing for a scan of labelled split {split!r}")
        label = check_count(read_records(label_path, np.uint32, 1, "label file"), len(coord), label_path, "labels")
        raw = (label & 0xFFFF).astype(np.int64)
        scan.segment = self.label_spec.map_raw(raw, label_path)
        scan.extra["raw_segment"] = raw
        scan.extra["instance"] = (label >> 16).astype(np.int64)
        return scan
