"""SemanticKITTI: sequences/XX/velodyne/NNNNNN.bin + sequences/XX/labels/NNNNNN.label.

velodyne: float32 [N, 4] x, y, z, remission. labels: uint32 [N], semantic id = label & 0xFFFF,
instance id = label >> 16. feat = [remission] (C = 1). Scan ids are "XX/NNNNNN".

Splits are lists of sequence folders, taken from the label spec: the official one (train 00-07, 09, 10;
val 08; test 11-21) or a label-config YAML given as `label_config` (a path, relative to the root or
absolute) with its own `names`, `learning_map` and optionally `splits`. The synthetic-lidar format
is this reader with label_config="labels.yaml". The split named "test" is unlabelled; every other
split must have a label file for every scan.

Where a sequence has them, `Scan.extra` also carries "boxes" (sequences/XX/boxes/NNNNNN.json, a
dos.data.boxes.Boxes in the scan's frame; written by the synthetic benchmark, see dos/data/boxfile.py) with
"box_instance" (their instance ids in the .label file), and "ego_pose" (from poses.txt and calib.txt: the
4x4 transform from the scan's LiDAR frame to the LiDAR frame of the sequence's first scan, Tr^-1 P Tr, as
SemanticKITTI's own tools read the camera-frame poses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.boxfile import read_box_file
from dos.data.errors import DatasetError
from dos.data.labels import LabelSpec, label_spec_from_file, load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import (check_coord, check_count, has_dir, has_file, read_records, read_text,
                                    require_dir, sorted_names)
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
        self._poses: dict[str, np.ndarray | None] = {}

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
        self._add_boxes_and_pose(scan, seq, frame)
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

    def _add_boxes_and_pose(self, scan: Scan, seq: str, frame: str) -> None:
        box_path = self.sequences_dir / seq / "boxes" / f"{frame}.json"
        if has_dir(box_path.parent, "boxes folder"):
            if not has_file(box_path, "box file"):
                raise DatasetError(f"{box_path}: box file missing for scan {scan.name}")
            scan.extra["boxes"], scan.extra["box_instance"] = read_box_file(box_path)
        if seq not in self._poses:
            self._poses[seq] = read_poses(self.sequences_dir / seq)
        poses = self._poses[seq]
        if poses is not None:
            if not frame.isdigit() or int(frame) >= len(poses):
                raise DatasetError(f"{self.sequences_dir / seq / 'poses.txt'}: no pose for scan {frame} "
                                   f"({len(poses)} lines)")
            scan.extra["ego_pose"] = poses[int(frame)]


def _matrices(path: Path, lines: list[str], what: str) -> np.ndarray:
    """[L, 4, 4] from lines of 12 numbers (a row-major 3x4 matrix each)."""
    out = np.tile(np.eye(4), (len(lines), 1, 1))
    for i, line in enumerate(lines):
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if len(values) != 12 or not np.isfinite(values).all():
            raise DatasetError(f"{path}: line {i + 1} is not 12 numbers ({what})")
        out[i, :3] = np.reshape(values, (3, 4))
    return out


def read_poses(sequence: Path) -> np.ndarray | None:
    """[F, 4, 4] LiDAR poses of a sequence (Tr^-1 P Tr of poses.txt and calib.txt's Tr), None without poses.txt."""
    path = sequence / "poses.txt"
    if not has_file(path, "poses file"):
        return None
    poses = _matrices(path, [line for line in read_text(path, "poses file").splitlines() if line.strip()], "a pose")
    calib = sequence / "calib.txt"
    if not has_file(calib, "calib file"):
        raise DatasetError(f"{calib}: missing; poses.txt is in the camera frame and needs calib.txt's Tr")
    tr = [line.split(":", 1)[1] for line in read_text(calib, "calib file").splitlines() if line.startswith("Tr:")]
    if len(tr) != 1:
        raise DatasetError(f"{calib}: expected one line 'Tr: <12 numbers>', found {len(tr)}")
    tr_matrix = _matrices(calib, tr, "Tr")[0]
    return np.linalg.inv(tr_matrix) @ poses @ tr_matrix
