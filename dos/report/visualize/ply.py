"""PLY point clouds for external viewers (MeshLab, CloudCompare, Open3D): per point float x, y, z and uchar
red, green, blue. Read back by `dos.data.readers.ply.read_ply_vertices`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dos.errors import DosError
from dos.utils.io import atomic_path


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Colours in [0, 1] (float) as 0..255 bytes, rounded."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def write_ply(path: str | os.PathLike, xyz: np.ndarray, rgb: np.ndarray, binary: bool = True) -> Path:
    """Write points `xyz` [N, 3] with colours `rgb` [N, 3] (uint8, or floats in [0, 1]) as binary little-endian
    (default) or ascii PLY, atomically."""
    path = Path(path)
    xyz = np.asarray(xyz, dtype=np.float32)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = to_uint8(rgb)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or rgb.shape != xyz.shape:
        raise DosError(f"{path}: a PLY needs xyz [N, 3] and rgb [N, 3], got {xyz.shape} and {rgb.shape}")
    header = ("ply\n" f"format {'binary_little_endian' if binary else 'ascii'} 1.0\n"
              "comment written by dos visualize\n" f"element vertex {len(xyz)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        if binary:
            table = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                              ("red", "u1"), ("green", "u1"), ("blue", "u1")])
            table["x"], table["y"], table["z"] = xyz.T
            table["red"], table["green"], table["blue"] = rgb.T
            handle.write(table.tobytes())
        else:
            for (x, y, z), (r, g, b) in zip(xyz.tolist(), rgb.tolist()):
                handle.write(f"{x:.9g} {y:.9g} {z:.9g} {r} {g} {b}\n".encode("ascii"))
    return path
