"""Pointcept's preprocessed indoor layout: one folder of .npy arrays per room (ScanNet, S3DIS).

coord.npy float32 [N, 3]; color.npy uint8 [N, 3] (0..255); normal.npy float32 [N, 3] (optional);
instance.npy int [N] (optional, -1 = none); the semantic labels are read by each reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.readers.files import check_coord, check_count, has_file, load_ids, load_npy, require_dir


def load_room(folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(coord [N, 3], feat [N, 3 or 6] = rgb in [0, 1] then the normal when normal.npy exists, extra)."""
    require_dir(folder, "room")
    coord = check_coord(load_npy(folder / "coord.npy", "coordinates", 3), folder / "coord.npy")
    color = check_count(load_npy(folder / "color.npy", "colours", 3), len(coord), folder / "color.npy", "colours")
    feats = [color.astype(np.float32) / np.float32(255.0)]
    extra: dict = {"feat_names": ["r", "g", "b"]}
    if has_file(folder / "normal.npy", "normals"):
        normal = load_npy(folder / "normal.npy", "normals", 3)
        feats.append(check_count(normal, len(coord), folder / "normal.npy", "normals").astype(np.float32))
        extra["feat_names"] += ["nx", "ny", "nz"]
    if has_file(folder / "instance.npy", "instance ids"):
        instance = load_ids(folder / "instance.npy", "instance ids")
        extra["instance"] = check_count(instance, len(coord), folder / "instance.npy", "instance ids")
    return coord, np.concatenate(feats, axis=1), extra
