"""Writers for the real on-disk formats (every file atomically: temporary name, then rename).

- SemanticKITTI: sequences/XX/velodyne/NNNNNN.bin (float32 [N, 4] x, y, z, remission) and
  sequences/XX/labels/NNNNNN.label (uint32: semantic id in the low 16 bits, instance id in the high 16),
  sequences/XX/boxes/NNNNNN.json (3D boxes in the sensor frame, dos/data/boxfile.py; ours, not SemanticKITTI's),
  sequences/XX/poses.txt (SemanticKITTI's: one line per scan, the 12 numbers of the 3x4 pose of the scan in
  the frame of the sequence's first scan, row-major) and sequences/XX/calib.txt (only `Tr:`, the LiDAR to
  camera transform that poses.txt is conjugated with; ours has no camera, so it is the identity).
- ScanNet, Pointcept layout: <split>/sceneXXXX_XX/{coord,color,normal,segment20,segment200,instance}.npy.
- labels.yaml at the root of each dataset: class names, label maps and splits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from dos.data.boxes import Boxes
from dos.data.boxfile import write_box_file
from dos.utils.io import atomic_path, write_text


def _write_raw(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        array.tofile(tmp)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
        np.save(f, array)


def write_kitti_scan(root: str | os.PathLike, sequence: str, frame: int, points: np.ndarray, semantic: np.ndarray,
                     instance: np.ndarray) -> None:
    """One scan: points [N, 4] (x, y, z, remission), raw semantic ids [N] and instance ids [N] (both < 2**16)."""
    semantic, instance = np.asarray(semantic), np.asarray(instance)
    if semantic.min(initial=0) < 0 or semantic.max(initial=0) > 0xFFFF or instance.min(initial=0) < 0 \
            or instance.max(initial=0) > 0xFFFF:
        raise ValueError("semantic and instance ids must fit in 16 bits")
    seq = Path(root) / "sequences" / sequence
    label = (instance.astype(np.uint32) << np.uint32(16)) | semantic.astype(np.uint32)
    _write_raw(seq / "velodyne" / f"{frame:06d}.bin", np.ascontiguousarray(points, dtype=np.float32))
    _write_raw(seq / "labels" / f"{frame:06d}.label", np.ascontiguousarray(label, dtype=np.uint32))


def write_kitti_boxes(root: str | os.PathLike, sequence: str, frame: int, boxes: Boxes, instance: np.ndarray) -> None:
    write_box_file(Path(root) / "sequences" / sequence / "boxes" / f"{frame:06d}.json", boxes, instance)


def write_kitti_poses(root: str | os.PathLike, sequence: str, translations: np.ndarray) -> None:
    """poses.txt of a sequence whose sensor only translates (by `translations` [F, 3] from its first scan), and
    a calib.txt whose Tr is the identity."""
    seq = Path(root) / "sequences" / sequence
    poses = np.zeros((len(translations), 3, 4))
    poses[:, :, :3] = np.eye(3)
    poses[:, :, 3] = translations
    write_text(seq / "poses.txt", "".join(" ".join(repr(float(v)) for v in pose.ravel()) + "\n" for pose in poses))
    write_text(seq / "calib.txt", "Tr: 1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0 0.0\n")


def read_kitti_scan(root: str | os.PathLike, sequence: str, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points [N, 4] float32, semantic [N], instance [N]) — the inverse of `write_kitti_scan`, for checks."""
    seq = Path(root) / "sequences" / sequence
    points = np.fromfile(seq / "velodyne" / f"{frame:06d}.bin", dtype=np.float32).reshape(-1, 4)
    label = np.fromfile(seq / "labels" / f"{frame:06d}.label", dtype=np.uint32)
    return points, (label & 0xFFFF).astype(np.int64), (label >> 16).astype(np.int64)


SCANNET_DTYPES = {"coord": np.float32, "color": np.uint8, "normal": np.float32, "segment20": np.int64,
                  "segment200": np.int64, "instance": np.int64}


def write_scannet_scene(root: str | os.PathLike, split: str, scene: str, arrays: dict[str, np.ndarray]) -> None:
    """One scene in the Pointcept ScanNet layout; `arrays` must hold exactly the keys of SCANNET_DTYPES."""
    if set(arrays) != set(SCANNET_DTYPES):
        raise ValueError(f"scene arrays must be {sorted(SCANNET_DTYPES)}, got {sorted(arrays)}")
    n = len(arrays["coord"])
    for key, dtype in SCANNET_DTYPES.items():
        array = np.ascontiguousarray(arrays[key], dtype=dtype)
        if len(array) != n:
            raise ValueError(f"{key} has {len(array)} rows, coord has {n}")
        _write_npy(Path(root) / split / scene / f"{key}.npy", array)


def write_yaml(path: str | os.PathLike, obj: dict) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=120))
