"""mmdet3d's on-disk conventions: info pickles, and the indoor points/ + *_mask/ .bin layout.

Info pickles are {"metainfo": {...}, "data_list": [entry, ...]}, one file per split, named from the
file name: "<anything>_infos_<split>.pkl" -> <split>; a file without a split suffix (nus_info.pkl,
scannet_infos.pkl) is the split "all".

Indoor scenes (ScanNet, S3DIS) are <root>/points/<scene>.bin float32 [N, 6] x, y, z, r, g, b (0..255),
<root>/semantic_mask/<scene>.bin int64 [N] and <root>/instance_mask/<scene>.bin int64 [N].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.readers.files import check_coord, check_count, has_dir, has_file, read_records, require_dir, sorted_names
from dos.data.readers.pickles import load_pickle


def info_split_name(path: Path) -> str:
    match = re.search(r"_infos?_(\w+)$", path.stem)
    return match.group(1) if match else "all"


def find_info_files(root: Path) -> dict[str, Path]:
    """split -> info pickle, for the *info*.pkl files directly under `root`."""
    found: dict[str, Path] = {}
    for name in sorted_names(root, ".pkl"):
        if "info" not in name:
            continue
        path = root / f"{name}.pkl"
        split = info_split_name(path)
        if split in found:
            raise DatasetError(f"{path}: a second info file for split {split!r} (first: {found[split]})")
        found[split] = path
    return found


def read_info(path: Path) -> tuple[dict, list[dict]]:
    """(metainfo, data_list) of an info pickle, read with the restricted unpickler of readers/pickles.py;
    the metainfo is a dict and every entry a dict."""
    info = load_pickle(path, "info pickle")
    if isinstance(info, list):  # mmdet3d < 1.1 stored the bare list
        metainfo, entries = {}, info
    elif isinstance(info, dict) and isinstance(info.get("data_list"), list):
        metainfo, entries = info.get("metainfo") or {}, info["data_list"]
    else:
        raise DatasetError(f"{path}: info pickle has no `data_list` list")
    if not isinstance(metainfo, dict):
        raise DatasetError(f"{path}: info pickle's `metainfo` is a {type(metainfo).__name__}, not a dict")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: entry {position} is a {type(entry).__name__}, not a dict")
    return metainfo, entries


def entry_text(entry: dict, keys: tuple[str, ...], path: Path, position: int) -> str | None:
    """The first non-empty of `keys` in an info entry, where a key "a.b" is entry["a"]["b"]; a value that
    is not a string is an error naming the info file and the entry."""
    for key in keys:
        value = entry
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, str):
            raise DatasetError(f"{path}: entry {position}: {key} is a {type(value).__name__}, not a path")
        if value:
            return value
    return None


def indoor_scene_ids(root: Path) -> dict[str, list[str]]:
    """split -> scene names: from the info pickles at the root, else every points/*.bin as split "all"."""
    info_files = find_info_files(root)
    if not info_files:
        points = require_dir(root / "points", "points")
        names = sorted_names(points, ".bin")
        if not names:
            raise DatasetError(f"{points}: no .bin scenes")
        return {"all": names}
    splits = {}
    for split, path in info_files.items():
        _, entries = read_info(path)
        names: list[str] = []
        seen: set[str] = set()
        for position, entry in enumerate(entries):
            lidar = entry_text(entry, ("lidar_points.lidar_path", "pts_path"), path, position)
            if not lidar:
                raise DatasetError(f"{path}: entry {position} has no lidar_points.lidar_path")
            name = Path(lidar).stem
            if name in seen:
                raise DatasetError(f"{path}: entry {position} repeats scene {name!r}")
            seen.add(name)
            names.append(name)
        splits[split] = names
    return splits


def load_indoor_scene(root: Path, scene: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(coord [N, 3], rgb in [0, 1] [N, 3], raw semantic mask or None, instance mask or None).

    A mask is None only when its folder is absent; a missing file inside a present folder is an error.
    """
    points_path = root / "points" / f"{scene}.bin"
    points = read_records(points_path, np.float32, 6, "points file")
    coord = check_coord(points[:, :3], points_path)
    rgb = np.ascontiguousarray(points[:, 3:6] / np.float32(255.0))
    masks = []
    for folder, what in (("semantic_mask", "semantic mask"), ("instance_mask", "instance mask")):
        if not has_dir(root / folder, f"{what} folder"):
            masks.append(None)
            continue
        path = root / folder / f"{scene}.bin"
        if not has_file(path, what):
            raise DatasetError(f"{path}: {what} missing for scene {scene}")
        masks.append(check_count(read_records(path, np.int64, 1, what), len(coord), path, "labels"))
    return coord, rgb, masks[0], masks[1]
