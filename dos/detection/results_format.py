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

MOVING_SPEED = 0.2  # m/s: above this a box counts as moving when its attribute is guessed from its velocity
_VEHICLES = ("car", "truck", "bus", "trailer", "construction_vehicle")
_CYCLES = ("motorcycle", "bicycle")


def default_attribute(name: str, velocity: np.ndarray) -> str:
    """The attribute a detector without an attribute head reports (CenterPoint's and mmdet3d's convention): from
    the speed for vehicles, cycles and pedestrians, else each class's most frequent attribute in nuScenes
    training; "" for traffic cones and barriers, which have none. A NaN velocity counts as stationary."""
    moving = bool(np.hypot(velocity[0], velocity[1]) > MOVING_SPEED)
    if name in _VEHICLES:
        return "vehicle.moving" if moving else ("vehicle.stopped" if name == "bus" else "vehicle.parked")
    if name in _CYCLES:
        return "cycle.with_rider" if moving else "cycle.without_rider"
    if name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return ""



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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def parse_boxes(results: ResultBoxes, token_index: Mapping[str, int], source: str,
                predictions: bool) -> BoxTable:
    """Validate box dicts and stack them. `source` names the input (a file) in error messages; predictions
    need `detection_score`. The checks run on whole arrays; a failing one looks for the first bad box."""
    boxes, samples = [], []
    for token, sample_boxes in results.items():
        if token not in token_index:
            raise DosError(f"{source}: sample '{token}' is not among the evaluated samples")
        boxes.extend(sample_boxes)
        samples.extend([token_index[token]] * len(sample_boxes))
    tokens = list(token_index)

    def fail(check, message) -> None:
        for i, box in enumerate(boxes):
            if not isinstance(box, Mapping) or not check(box):
                token = tokens[samples[i]]
                index = i - samples.index(samples[i])
                where = f"{source}: sample '{token}' box {index}"
                if not isinstance(box, Mapping):
                    raise DosError(f"{where}: a box is an object, got {type(box).__name__}")
                raise DosError(f"{where}: {message(box, where)}")
        raise AssertionError("a check failed on the arrays but on no box")  # pragma: no cover

    if not all(isinstance(box, Mapping) for box in boxes):
        fail(lambda box: True, None)
    names = [box.get("detection_name") for box in boxes]
    if not all(name in _CLASS_INDEX for name in names):
        fail(lambda box: box.get("detection_name") in _CLASS_INDEX, lambda box, _: (
            f"detection_name {box.get('detection_name')!r} is not one of {', '.join(DETECTION_CLASSES)}"))
    attributes = [box.get("attribute_name", "") for box in boxes]
    if not all(a in _ATTRIBUTE_INDEX for a in attributes):
        fail(lambda box: box.get("attribute_name", "") in _ATTRIBUTE_INDEX, lambda box, _: (
            f"attribute_name {box.get('attribute_name')!r} is not '' or one of {', '.join(ATTRIBUTE_NAMES)}"))

    def vectors(key: str, n: int, allow_nan: bool = False, default: list[float] | None = None) -> np.ndarray:
        try:
            array = np.array([box.get(key, default) for box in boxes], dtype=np.float64).reshape(len(boxes), n)
            ok = allow_nan or not np.isnan(array).any()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            fail(lambda box: (key not in box and default is not None) or _checks(box, key, n, allow_nan),
                 lambda box, where: _vector(box, key, n, where, allow_nan))
        return array

    size = vectors("size", 3)
    if len(size) and size.min() <= 0:
        fail(lambda box: min(box["size"]) > 0,
             lambda box, _: f"every size (width, length, height) must be > 0, got {box['size']}")
    if predictions:
        scores = [box.get("detection_score") for box in boxes]
        if not all(_is_number(s) for s in scores):
            fail(lambda box: _is_number(box.get("detection_score")),
                 lambda box, _: f"detection_score must be a number, got {box.get('detection_score')!r}")
    else:
        scores = [-1.0] * len(boxes)
    num_pts = [box.get("num_pts", -1) for box in boxes]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in num_pts):
        fail(lambda box: isinstance(box.get("num_pts", -1), int) and not isinstance(box.get("num_pts", -1), bool),
             lambda box, _: f"num_pts must be an integer, got {box.get('num_pts')!r}")
    return BoxTable(sample=np.array(samples, dtype=np.int64).reshape(-1),
                    label=np.array([_CLASS_INDEX[n] for n in names], dtype=np.int64).reshape(-1),
                    translation=vectors("translation", 3), size=size, rotation=vectors("rotation", 4),
                    velocity=vectors("velocity", 2, allow_nan=True),
                    ego_translation=vectors("ego_translation", 3, allow_nan=True, default=[math.nan] * 3),
                    num_pts=np.array(num_pts, dtype=np.int64).reshape(-1),
                    score=np.array(scores, dtype=np.float64).reshape(-1),
                    attribute=np.array([_ATTRIBUTE_INDEX[a] for a in attributes], dtype=np.int64).reshape(-1))


def _checks(box: Mapping, key: str, n: int, allow_nan: bool) -> bool:
    try:
        _vector(box, key, n, "", allow_nan)
    except DosError:
        return False
    return True
