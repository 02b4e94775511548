"""Detections -> nuScenes' results format (the `results` dict of a submission JSON), one list of box dicts per
sample token.

Boxes must already be in the frame the results need (nuScenes: global); moving them from the sensor frame takes
the sample's calibration and ego pose, which the reader owns. An unknown (NaN) velocity is written as 0: JSON
has no NaN, and the devkit scores AVE on matched boxes only.
"""

from __future__ import annotations

import numpy as np

from dos.data.boxes import Boxes, yaw_to_quaternion

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


def to_nuscenes_results(boxes: Boxes, scores: np.ndarray, sample_token: str) -> list[dict]:
    """One sample's detections as nuScenes result boxes (translation, size (w, l, h), rotation (w, x, y, z),
    velocity, detection_name, detection_score, attribute_name). A box's own attribute is kept when it has one,
    else `default_attribute` supplies it."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(boxes))
    rotation = yaw_to_quaternion(boxes.yaw)
    velocity = np.nan_to_num(boxes.velocity, nan=0.0)
    names = boxes.names()
    return [{"sample_token": sample_token,
             "translation": boxes.center[i].tolist(),
             "size": boxes.size[i].tolist(),
             "rotation": rotation[i].tolist(),
             "velocity": velocity[i].tolist(),
             "detection_name": names[i],
             "detection_score": float(scores[i]),
             "attribute_name": boxes.attribute[i] or default_attribute(names[i], boxes.velocity[i])}
            for i in range(len(boxes))]
