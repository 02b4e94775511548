"""nuScenes' detection results format: `Boxes` -> per-sample lists of box dicts, and those dicts -> arrays.

A box dict is the devkit's `DetectionBox` serialised: `sample_token`, `translation` [3], `size` [3] (width,
length, height), `rotation` [4] (quaternion w, x, y, z), `velocity` [2], `detection_name`, `detection_score`
(predictions only) and `attribute_name` ("" = none); ground truth also has `num_pts` (LiDAR points inside; 0 is
dropped from evaluation) and both may have `ego_translation` [3] (the box centre minus the ego position, whose xy
norm is the distance the class ranges filter on). A result file is `{"meta": {...}, "results": {token: [...]}}`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dos.data.boxes import DETECTION_CLASSES, Boxes, yaw_to_quaternion
from dos.errors import DosError

# The devkit's attribute names; a box may also have "" (no attribute).
ATTRIBUTE_NAMES: tuple[str, ...] = ("pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing",
                                    "cycle.with_rider", "cycle.without_rider", "vehicle.moving", "vehicle.parked",
                                    "vehicle.stopped")

ResultBoxes = Mapping[str, Sequence[Mapping]]


def boxes_to_results(boxes: Boxes, sample_token: str, scores: np.ndarray | None = None,
                     ego_position: Sequence[float] = (0.0, 0.0, 0.0)) -> list[dict]:
    """One sample's `Boxes` as nuScenes result dicts: predictions when `scores` is given, else ground truth
    (with `num_pts` from `boxes.num_points`). `ego_position` is the ego vehicle's position in the boxes' frame
    (the origin for boxes in the ego / sensor frame); `ego_translation` = centre - ego_position."""
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"{len(scores)} scores for {len(boxes)} boxes")
    rotation = yaw_to_quaternion(boxes.yaw)
    ego_translation = boxes.center - np.asarray(ego_position, dtype=np.float64).reshape(1, 3)
    out = []
    for i, name in enumerate(boxes.names()):
        box = {"sample_token": sample_token, "translation": boxes.center[i].tolist(),
               "size": boxes.size[i].tolist(), "rotation": rotation[i].tolist(),
               "velocity": boxes.velocity[i].tolist(), "ego_translation": ego_translation[i].tolist(),
               "detection_name": name, "attribute_name": boxes.attribute[i]}
        if scores is None:
            box["num_pts"] = int(boxes.num_points[i])
        else:
            box["detection_score"] = float(scores[i])
        out.append(box)
    return out


def read_results(path: str | Path) -> dict[str, list[dict]]:
    """The `results` of a nuScenes result file (sample token -> box dicts), in the file's sample order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DosError(f"{path}: cannot read a nuScenes result file ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise DosError(f"{path}: a nuScenes result file is an object with a 'results' object "
                       "(sample token -> list of boxes)")
    return data["results"]


@dataclass
class BoxTable:
    """The boxes of many samples as arrays, one row per box in the input's order (samples in mapping order)."""
    sample: np.ndarray            # [N] int64: index into the evaluation's sample tokens
    label: np.ndarray             # [N] int64: index into DETECTION_CLASSES
    translation: np.ndarray       # [N, 3]
    size: np.ndarray              # [N, 3] width, length, height
    rotation: np.ndarray          # [N, 4] w, x, y, z
    velocity: np.ndarray          # [N, 2], NaN = unknown
    ego_translation: np.ndarray   # [N, 3], NaN where the input has none
    num_pts: np.ndarray           # [N] int64, -1 = not given (predictions)
    score: np.ndarray             # [N], -1 for ground truth (as the devkit)
    attribute: np.ndarray         # [N] int64: index into ATTRIBUTE_NAMES, -1 = ""

    def __len__(self) -> int:
        return len(self.sample)

    def select(self, keep: np.ndarray) -> "BoxTable":
        return BoxTable(**{k: v[keep] for k, v in vars(self).items()})


_CLASS_INDEX = {name: i for i, name in enumerate(DETECTION_CLASSES)}
_ATTRIBUTE_INDEX = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)} | {"": -1}


def _vector(box: Mapping, key: str, n: int, where: str, allow_nan: bool = False) -> list[float]:
    value = box.get(key)
    try:
        value = [float(v) for v in value]
    except (TypeError, ValueError):
        value = None
    if value is None or len(value) != n or (not allow_nan and any(math.isnan(v) for v in value)):
        raise DosError(f"{where}: '{key}' must be a list of {n} numbers{'' if allow_nan else ' (no NaN)'}, "
                       f"got {box.get(key)!r}")
    return value


def parse_boxes(results: ResultBoxes, token_index: Mapping[str, int], source: str,
                predictions: bool) -> BoxTable:
    """Validate box dicts and stack them. `source` names the input (a file) in error messages; predictions
    need `detection_score`."""
    rows: dict[str, list] = {k: [] for k in BoxTable.__dataclass_fields__}
    for token, boxes in results.items():
        if token not in token_index:
            raise DosError(f"{source}: sample '{token}' is not among the evaluated samples")
        for i, box in enumerate(boxes):
            where = f"{source}: sample '{token}' box {i}"
            if not isinstance(box, Mapping):
                raise DosError(f"{where}: a box is an object, got {type(box).__name__}")
            name = box.get("detection_name")
            if name not in _CLASS_INDEX:
                raise DosError(f"{where}: detection_name {name!r} is not one of {', '.join(DETECTION_CLASSES)}")
            attribute = box.get("attribute_name", "")
            if attribute not in _ATTRIBUTE_INDEX:
                raise DosError(f"{where}: attribute_name {attribute!r} is not '' or one of "
                               f"{', '.join(ATTRIBUTE_NAMES)}")
            size = _vector(box, "size", 3, where)
            if min(size) <= 0:
                raise DosError(f"{where}: every size (width, length, height) must be > 0, got {size}")
            if predictions:
                score = box.get("detection_score")
                if not isinstance(score, (int, float)) or isinstance(score, bool) or math.isnan(score):
                    raise DosError(f"{where}: detection_score must be a number, got {score!r}")
            else:
                score = -1.0
            num_pts = box.get("num_pts", -1)
            if not isinstance(num_pts, int) or isinstance(num_pts, bool):
                raise DosError(f"{where}: num_pts must be an integer, got {num_pts!r}")
            rows["sample"].append(token_index[token])
            rows["label"].append(_CLASS_INDEX[name])
            rows["translation"].append(_vector(box, "translation", 3, where))
            rows["size"].append(size)
            rows["rotation"].append(_vector(box, "rotation", 4, where))
            rows["velocity"].append(_vector(box, "velocity", 2, where, allow_nan=True))
            rows["ego_translation"].append(_vector(box, "ego_translation", 3, where)
                                           if "ego_translation" in box else [math.nan] * 3)
            rows["num_pts"].append(num_pts)
            rows["score"].append(float(score))
            rows["attribute"].append(_ATTRIBUTE_INDEX[attribute])
    shapes = {"translation": 3, "size": 3, "rotation": 4, "velocity": 2, "ego_translation": 3}
    arrays = {}
    for key, values in rows.items():
        dtype = np.int64 if key in ("sample", "label", "num_pts", "attribute") else np.float64
        array = np.asarray(values, dtype=dtype)
        arrays[key] = array.reshape(-1, shapes[key]) if key in shapes else array.reshape(-1)
    return BoxTable(**arrays)
