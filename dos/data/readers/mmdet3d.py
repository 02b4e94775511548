"""mmdet3d's on-disk conventions: info pickles, and the indoor points/ + *_mask/ .bin layout.

Info pickles are {"metainfo": {...}, "data_list": [entry, ...]}, one file per split, named from the
file name: "<anything>_infos_<split>.pkl" -> <split>; a file without a split suffix (nus_info.pkl,
scannet_infos.pkl) is the split "all".

Indoor scenes (ScanNet, S3DIS) are <root>/points/<scene>.bin float32 [N, 6] x, y, z, r, g, b (0..255),
<root>/semantic_mask/<scene>.bin int64 [N] and <root>/instance_mask/<scene>.bin int64 [N].

3D boxes of an outdoor entry are its `instances`: bbox_3d, bbox_label_3d (an index into the metainfo's
classes; -1 = a class the converter ignored), velocity (vx, vy) and num_lidar_pts, in the LiDAR frame. Two
box conventions exist (see `BOX_CONVENTIONS`):

* "mmdet3d" (mmdet3d >= 1.0.0rc0, the coordinate-system refactoring): bbox_3d = (x, y, z, l, w, h, yaw),
  (x_size, y_size, z_size) = (l, w, h) and yaw the devkit's (0 = length along +x, counter-clockwise): the
  converter writes `dims[:, [1, 0, 2]]` of the devkit's w, l, h and `yaw_pitch_roll[0]` of its orientation.
* "mmdet3d-v0" (mmdet3d < 1.0): bbox_3d = (x, y, z, w, l, h, -yaw - pi/2), the devkit's wlh as they are
  and the yaw of the old left-handed LiDAR boxes.

In both, (x, y, z) is the gravity centre (the datasets build their boxes with origin (0.5, 0.5, 0.5)), as the
devkit's box centre. The convention is not recorded in a pickle: it is the reader's `box_convention` option.
How we checked which convention a pickle holds: for every moving box (speed > 0.5 m/s) the heading of its
velocity must agree with the box's yaw (a car drives forwards). In mmdet3d's own test fixture
tests/data/nuscenes/nus_info.pkl (a 1.x `data_list` pickle converted from older infos) all 24 moving boxes
agree within 0.3 rad under "mmdet3d-v0" and none under "mmdet3d" (differences of 0.7-3 rad); its sizes are
(w, l, h) = (1.7, 4.3, 1.5) for cars. That pickle therefore needs box_convention="mmdet3d-v0"; pickles
written by mmdet3d >= 1.0's create_data use the default.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dos.data.boxes import DETECTION_CLASSES, Boxes, wrap_angle
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


# mmdet3d's NuScenesDataset classes, in its order: the meaning of bbox_label_3d when the metainfo has none.
NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian",
                    "traffic_cone", "barrier")
BOX_CONVENTIONS = ("mmdet3d", "mmdet3d-v0")


def info_classes(metainfo: dict, path: Path) -> tuple[str, ...]:
    """The class names that bbox_label_3d indexes: metainfo `classes` / `CLASSES` (a list) or `categories`
    ({name: index}), else mmdet3d's nuScenes classes."""
    if isinstance(metainfo.get("categories"), dict):
        categories = metainfo["categories"]
        if sorted(categories.values()) != list(range(len(categories))):
            raise DatasetError(f"{path}: metainfo categories are not indexed 0..{len(categories) - 1}")
        return tuple(sorted(categories, key=categories.get))
    for key in ("classes", "CLASSES"):
        if key in metainfo:
            names = metainfo[key]
            if not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
                raise DatasetError(f"{path}: metainfo {key} is not a list of class names")
            return tuple(names)
    return NUSCENES_CLASSES


def _numbers(value, length: int, what: str, path: Path, position: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (length,):
        raise DatasetError(f"{path}: entry {position}: {what} is not {length} numbers")
    return array


def info_boxes(entry: dict, classes: tuple[str, ...], convention: str, path: Path, position: int) -> Boxes | None:
    """The detection-class boxes of an info entry (None when it has no `instances`); instances of a class
    that is not one of DETECTION_CLASSES, or labelled -1, are dropped."""
    if convention not in BOX_CONVENTIONS:
        raise DatasetError(f"box_convention {convention!r}: expected one of {', '.join(BOX_CONVENTIONS)}")
    instances = entry.get("instances")
    if instances is None:
        return None
    if not isinstance(instances, list):
        raise DatasetError(f"{path}: entry {position}: instances is a {type(instances).__name__}, not a list")
    rows, labels, velocity, num_points = [], [], [], []
    for k, instance in enumerate(instances):
        where = f"instance {k}"
        if not isinstance(instance, dict) or "bbox_3d" not in instance or "bbox_label_3d" not in instance:
            raise DatasetError(f"{path}: entry {position}: {where} has no bbox_3d and bbox_label_3d")
        label = instance["bbox_label_3d"]
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or not -1 <= label < len(classes):
            raise DatasetError(f"{path}: entry {position}: {where}: bbox_label_3d {label!r} is not -1 or a class "
                               f"index below {len(classes)}")
        if label < 0 or classes[label] not in DETECTION_CLASSES:
            continue
        bbox = instance["bbox_3d"]  # 9 numbers: (vx, vy) appended
        box = _numbers(bbox, 9 if np.size(bbox) == 9 else 7, f"{where}: bbox_3d", path, position)[:7]
        if not np.isfinite(box).all() or (box[3:6] <= 0).any():
            raise DatasetError(f"{path}: entry {position}: {where}: bbox_3d has a non-finite value or a size <= 0")
        rows.append(box)
        labels.append(DETECTION_CLASSES.index(classes[label]))
        velocity.append(_numbers(instance.get("velocity", [np.nan, np.nan]), 2, f"{where}: velocity", path, position))
        count = instance.get("num_lidar_pts", -1)
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
            raise DatasetError(f"{path}: entry {position}: {where}: num_lidar_pts is not an integer")
        num_points.append(int(count))
    if not rows:
        return Boxes.empty()
    box = np.array(rows)
    if convention == "mmdet3d":
        size, yaw = box[:, [4, 3, 5]], box[:, 6]
    else:
        size, yaw = box[:, 3:6], -box[:, 6] - np.pi / 2
    return Boxes(box[:, :3], size, wrap_angle(yaw), np.array(labels), np.array(velocity), np.array(num_points))


def info_pose(entry: dict, path: Path, position: int) -> np.ndarray | None:
    """The LiDAR-to-global 4x4 transform of an info entry (ego2global @ lidar2ego), None when absent."""
    lidar = entry.get("lidar_points")
    if "ego2global" not in entry or not isinstance(lidar, dict) or "lidar2ego" not in lidar:
        return None
    matrices = [_numbers(m, 16, name, path, position).reshape(4, 4)
                for m, name in ((entry["ego2global"], "ego2global"), (lidar["lidar2ego"], "lidar_points.lidar2ego"))]
    return matrices[0] @ matrices[1]


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
