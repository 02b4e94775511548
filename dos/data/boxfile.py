"""The box file of a synthetic scan: sequences/XX/boxes/NNNNNN.json next to velodyne/ and labels/.

    {"frame": "sensor", "boxes": [{"class": "car", "center": [x, y, z], "size": [w, l, h], "yaw": r,
      "velocity": [vx, vy], "num_lidar_pts": n, "attribute": "vehicle.parked", "instance": i}, ...]}

in the conventions of dos.data.boxes (a NaN velocity is written as null). `instance` is the object's
instance id in the scan's .label file (0 for a class without instance ids, e.g. barrier). Floats are written
with Python's repr, so a file read back gives the same numbers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from dos.data.boxes import DETECTION_CLASSES, Boxes
from dos.data.errors import DatasetError
from dos.data.readers.files import read_text
from dos.utils.io import write_text


def write_box_file(path: str | os.PathLike, boxes: Boxes, instance: np.ndarray) -> None:
    rows = []
    for i in range(len(boxes)):
        rows.append({"class": DETECTION_CLASSES[boxes.label[i]], "center": boxes.center[i].tolist(),
                     "size": boxes.size[i].tolist(), "yaw": float(boxes.yaw[i]),
                     "velocity": [None if math.isnan(v) else v for v in boxes.velocity[i].tolist()],
                     "num_lidar_pts": int(boxes.num_points[i]), "attribute": boxes.attribute[i],
                     "instance": int(instance[i])})
    lines = ",\n".join(" " + json.dumps(row) for row in rows)  # one box a line
    write_text(path, '{"frame": "sensor", "boxes": [\n' + lines + ("\n" if rows else "") + "]}\n")


def _numbers(row: dict, key: str, length: int, path: Path, position: int, nullable: bool = False) -> list[float]:
    value = row.get(key)
    ok = isinstance(value, list) and len(value) == length and all(
        (v is None and nullable) or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        for v in value)
    if not ok:
        raise DatasetError(f"{path}: box {position}: {key!r} is not {length} finite numbers")
    return [math.nan if v is None else float(v) for v in value]


def read_box_file(path: str | os.PathLike) -> tuple[Boxes, np.ndarray]:
    """(the boxes, their instance ids) of a box file; any malformed field is a DatasetError naming the file."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "box file"))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or data.get("frame") != "sensor" or not isinstance(data.get("boxes"), list):
        raise DatasetError(f"{path}: a box file is {{'frame': 'sensor', 'boxes': [...]}}")
    center, size, yaw, label, velocity, count, attribute, instance = [], [], [], [], [], [], [], []
    for position, row in enumerate(data["boxes"]):
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: box {position} is not a JSON object")
        if row.get("class") not in DETECTION_CLASSES:
            raise DatasetError(f"{path}: box {position}: class {row.get('class')!r} is not one of "
                               f"{', '.join(DETECTION_CLASSES)}")
        center.append(_numbers(row, "center", 3, path, position))
        size.append(_numbers(row, "size", 3, path, position))
        yaw.append(_numbers({"yaw": [row.get("yaw")]}, "yaw", 1, path, position)[0])
        velocity.append(_numbers(row, "velocity", 2, path, position, nullable=True))
        for key in ("num_lidar_pts", "instance"):
            if not isinstance(row.get(key), int) or isinstance(row.get(key), bool) or row[key] < 0:
                raise DatasetError(f"{path}: box {position}: {key!r} is not a non-negative integer")
        if not isinstance(row.get("attribute"), str):
            raise DatasetError(f"{path}: box {position}: 'attribute' is not a string")
        if min(size[-1]) <= 0:
            raise DatasetError(f"{path}: box {position}: a size is not positive")
        label.append(DETECTION_CLASSES.index(row["class"]))
        count.append(row["num_lidar_pts"])
        attribute.append(row["attribute"])
        instance.append(row["instance"])
    if not center:
        return Boxes.empty(), np.zeros(0, dtype=np.int64)
    return (Boxes(np.array(center), np.array(size), np.array(yaw), np.array(label), np.array(velocity),
                  np.array(count), attribute), np.array(instance, dtype=np.int64))
