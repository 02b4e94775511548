"""nuScenes v1.0 JSON tables: one checked reader for every table, and the 3D boxes of the key frames.

A box is read as the devkit's `NuScenes.get_sample_data` returns it for a LIDAR_TOP key frame: the
annotation's global box (sample_annotation.json: translation, size = w, l, h, rotation) is moved into the
ego frame (ego_pose of the sample_data: subtract the translation, apply the inverse rotation) and then into
the sensor frame (calibrated_sensor: the same). The velocity is the devkit's `box_velocity`: the centre
difference between the previous and the next annotation of the instance over their sample timestamps (a
one-sided difference at either end of a track), NaN for a single annotation or when the time gap exceeds
1.5 s (3 s for a centred difference); it is rotated into the sensor frame like the box and its (vx, vy)
kept. Categories become detection classes through labels/nuscenes_detection.yaml; annotations of the
other categories are dropped.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from pathlib import Path

import numpy as np
import yaml

from dos.data.boxes import DETECTION_CLASSES, Boxes, quaternion_to_matrix
from dos.data.errors import DatasetError
from dos.data.readers.files import has_file, read_text

MAX_TIME_DIFF = 1.5  # seconds, the devkit's default of box_velocity


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(value, kind: str) -> str | None:
    """Why `value` is not of `kind`, or None."""
    if kind == "text":
        return None if isinstance(value, str) else "is not a string"
    if kind == "number":
        return None if _is_number(value) else "is not a finite number"
    if kind == "texts":
        return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else \
            "is not a list of strings"
    length = {"vector3": 3, "quaternion": 4}[kind]
    if not (isinstance(value, list) and len(value) == length and all(_is_number(v) for v in value)):
        return f"is not a list of {length} finite numbers"
    if kind == "quaternion" and not any(value):
        return "is a zero quaternion"
    return None


def read_table(folder: Path, name: str, key: str, fields: dict[str, str]) -> dict[str, dict]:
    """The records of table `name` by their `key` field. Every record must have `key` (a string) and each
    of `fields` of its kind: text, number, texts (a list of strings), vector3, quaternion. A key that occurs
    twice is an error: one record would silently hide the other."""
    path = folder / f"{name}.json"
    try:
        rows = json.loads(read_text(path, f"nuScenes table {name}.json"))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: expected a JSON list of records")
    by_key: dict[str, dict] = {}
    first: dict[str, int] = {}
    for position, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: record {position} is not a JSON object")
        for field, kind in {key: "text", **fields}.items():
            if field not in row:
                raise DatasetError(f"{path}: record {position} has no {field!r}")
            problem = _check(row[field], kind)
            if problem:
                raise DatasetError(f"{path}: record {position}: {field!r} {problem}")
        if row[key] in first:
            raise DatasetError(f"{path}: {key} {row[key]} occurs twice (records {first[row[key]]} and {position})")
        first[row[key]] = position
        by_key[row[key]] = row
    return by_key


def detection_map() -> dict[str, int]:
    """nuScenes category name -> index into DETECTION_CLASSES (labels/nuscenes_detection.yaml)."""
    resource = importlib.resources.files("dos.data.labels") / "nuscenes_detection.yaml"
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    return {category: DETECTION_CLASSES.index(name) for category, name in data["detection"].items()}


def rigid(translation, rotation) -> np.ndarray:
    """The 4x4 transform of a nuScenes pose record (translation, rotation quaternion w, x, y, z)."""
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(rotation)
    pose[:3, 3] = translation
    return pose


class TableBoxes:
    """The boxes of the key frames of one tables folder (read when sample_annotation.json is there)."""

    def __init__(self, tables: Path):
        self.tables = tables
        self.annotations = read_table(tables, "sample_annotation", "token", {
            "sample_token": "text", "instance_token": "text", "attribute_tokens": "texts", "translation": "vector3",
            "size": "vector3", "rotation": "quaternion", "prev": "text", "next": "text", "num_lidar_pts": "number"})
        self.instances = read_table(tables, "instance", "token", {"category_token": "text"})
        self.categories = read_table(tables, "category", "token", {"name": "text"})
        self.attributes = read_table(tables, "attribute", "token", {"name": "text"})
        self.ego_poses = read_table(tables, "ego_pose", "token", {"translation": "vector3", "rotation": "quaternion"})
        self.sensors = read_table(tables, "calibrated_sensor", "token",
                                  {"translation": "vector3", "rotation": "quaternion"})
        self.timestamps = {token: row["timestamp"] for token, row in
                           read_table(tables, "sample", "token", {"timestamp": "number"}).items()}
        self.classes = detection_map()
        self.by_sample: dict[str, list[dict]] = {}
        for row in self.annotations.values():
            self.by_sample.setdefault(row["sample_token"], []).append(row)

    @staticmethod
    def present(tables: Path) -> bool:
        return has_file(tables / "sample_annotation.json", "nuScenes table sample_annotation.json")

    def _record(self, table: dict, token: str, name: str, referrer: str) -> dict:
        if token not in table:
            raise DatasetError(f"{self.tables / (name + '.json')}: no record {token} (referred to by {referrer})")
        return table[token]

    def _velocity(self, row: dict) -> np.ndarray:
        """The global velocity [3] of an annotation, as the devkit's box_velocity; NaN when unknown."""
        where = f"sample_annotation {row['token']}"
        prev = self._record(self.annotations, row["prev"], "sample_annotation", where) if row["prev"] else None
        nxt = self._record(self.annotations, row["next"], "sample_annotation", where) if row["next"] else None
        if prev is None and nxt is None:
            return np.full(3, np.nan)
        first, last = prev or row, nxt or row
        times = [self._record(self.timestamps, r["sample_token"], "sample", f"sample_annotation {r['token']}")
                 for r in (first, last)]
        dt = 1e-6 * (times[1] - times[0])
        if dt <= 0 or dt > MAX_TIME_DIFF * (2 if prev is not None and nxt is not None else 1):
            return np.full(3, np.nan)
        return (np.asarray(last["translation"]) - np.asarray(first["translation"])) / dt

    def sensor_pose(self, sample_data: dict) -> np.ndarray:
        """The 4x4 transform from the sensor frame of a sample_data record to the global frame."""
        where = f"sample_data {sample_data['token']}"
        for field in ("ego_pose_token", "calibrated_sensor_token"):
            if not isinstance(sample_data.get(field), str):
                raise DatasetError(f"{self.tables / 'sample_data.json'}: {where} has no {field!r} string")
        ego = self._record(self.ego_poses, sample_data["ego_pose_token"], "ego_pose", where)
        sensor = self._record(self.sensors, sample_data["calibrated_sensor_token"], "calibrated_sensor", where)
        return rigid(ego["translation"], ego["rotation"]) @ rigid(sensor["translation"], sensor["rotation"])

    def boxes(self, sample_token: str, sample_data: dict) -> tuple[Boxes, np.ndarray]:
        """(the detection-class boxes of a key frame in its sensor frame, the sensor-to-global pose)."""
        pose = self.sensor_pose(sample_data)
        to_sensor = np.linalg.inv(pose)
        keep, labels = [], []
        for row in self.by_sample.get(sample_token, []):
            instance = self._record(self.instances, row["instance_token"], "instance",
                                    f"sample_annotation {row['token']}")
            category = self._record(self.categories, instance["category_token"], "category",
                                    f"instance {instance['token']}")["name"]
            if category in self.classes:
                keep.append(row)
                labels.append(self.classes[category])
        if not keep:
            return Boxes.empty(), pose
        rotation = to_sensor[:3, :3]
        center = np.array([r["translation"] for r in keep]) @ rotation.T + to_sensor[:3, 3]
        heading = rotation @ quaternion_to_matrix(np.array([r["rotation"] for r in keep]))[..., :, 0, None]
        velocity = np.array([self._velocity(r) for r in keep]) @ rotation.T
        attributes = []
        for r in keep:
            if len(r["attribute_tokens"]) > 1:
                raise DatasetError(f"{self.tables / 'sample_annotation.json'}: annotation {r['token']} has "
                                   f"{len(r['attribute_tokens'])} attributes; a detection box has at most one")
            attributes.append(self._record(self.attributes, r["attribute_tokens"][0], "attribute",
                                           f"sample_annotation {r['token']}")["name"] if r["attribute_tokens"] else "")
        return Boxes(center, np.array([r["size"] for r in keep]), np.arctan2(heading[:, 1, 0], heading[:, 0, 0]),
                     np.array(labels), velocity[:, :2], np.array([int(r["num_lidar_pts"]) for r in keep]),
                     attributes), pose
