"""mmdet3d's on-disk conventions: info pickles, and the indoor points/ + *_mask/ .bin layout.

Info pickles are {"metainfo": {...}, "data_list": [entry, ...]}, one file per split, named from the
file name: "<anything>_infos_<split>.pkl" -> <split>; a file without a split suffix (nus_info.pkl,
scannet_infos.pkl) is the split "all".

Indoor scenes (ScanNet, S3DIS) are <root>/points/<scene>.bin float32 [N, 6] x, y, z, r, g, b (0..255),
<root>/semantic_mask/<scene>.bin int64 [N] and <root>/instance_mask/<scene>.bin int64 [N].
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from dos.data.errors import DatasetError
import numpy as np

from dos.data.readers.files import check_coord, check_count, read_records, require_file


def info_split_name(path: Path) -> str:
    match = re.search(r"_infos?_(\w+)$", path.stem)
    return match.group(1) if match else "all"


def find_info_files(root: Path) -> dict[str, Path]:
    """split -> info pickle, for the *info*.pkl files directly under `root`."""
    found: dict[str, Path] = {}
    for path in sorted(root.glob("*info*.pkl")):
        split = info_split_name(path)
        if split in found:
            raise DatasetError(f"{path}: a second info file for split {split!r} (first: {found[split]})")
        found[split] = path
    return found


def read_info(path: Path) -> tuple[dict, list[dict]]:
    """(metainfo, data_list) of an info pickle. Only open info files you trust: pickle runs code."""
    require_file(path, "info pickle")
    try:
        with path.open("rb") as handle:
            info = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable info pickle ({error})") from error
    if isinstance(info, list):  # mmdet3d < 1.1 stored the bare list
        return {}, info
    if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
        raise DatasetError(f"{path}: info pickle has no `data_list` list")
    return info.get("metainfo") or {}, info["data_list"]


def indoor_scene_ids(root: Path) -> dict[str, list[str]]:
    """split -> scene names: from the info pickles at the root, else every points/*.bin as split "all"."""
    info_files = find_info_files(root)
    if not info_files:
        points = root / "points"
        names = sorted(p.name[:-4] for p in points.glob("*.bin"))
        if not names:
            raise DatasetError(f"{points}: no .bin scenes")
        return {"all": names}
    splits = {}
    for split, path in info_files.items():
        _, entries = read_info(path)
        names = []
        for position, entry in enumerate(entries):
            lidar = (entry.get("lidar_points") or {}).get("lidar_path") or entry.get("pts_path")
            if not lidar:
                raise DatasetError(f"{path}: entry {position} has no lidar_points.lidar_path")
            names.append(Path(lidar).stem)
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
        if not (root / folder).is_dir():
            masks.append(None)
            continue
        path = root / folder / f"{scene}.bin"
        if not path.is_file():
            raise DatasetError(f"{path}: {what} missing for scene {scene}")
        masks.append(check_count(read_records(path, np.int64, 1, what), len(coord), path, "labels"))
    return coord, rgb, masks[0], masks[1]
