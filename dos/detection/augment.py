"""Boxes follow the points: one SpatialAugment draw (rotation about z, scale, flips of x / y) applied to both."""

from __future__ import annotations

import numpy as np

from dos.data.boxes import Boxes
from dos.data.transforms import RigidDraw


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def transform_boxes(boxes: Boxes, draw: RigidDraw) -> Boxes:
    """The boxes under p -> sign * (scale * R_z(angle) p): centres and velocities move as points do, sizes
    scale, and the heading rotates by `angle`, then mirrors (x flip: yaw -> pi - yaw; y flip: yaw -> -yaw)."""
    c, s = np.cos(draw.angle), np.sin(draw.angle)
    rot = np.array([[c, -s], [s, c]])
    sign = np.asarray(draw.sign)
    center = boxes.center.copy()
    center[:, :2] = (center[:, :2] @ rot.T) * draw.scale * sign
    center[:, 2] *= draw.scale
    velocity = (boxes.velocity @ rot.T) * draw.scale * sign
    yaw = boxes.yaw + draw.angle
    if sign[0] < 0:
        yaw = np.pi - yaw
    if sign[1] < 0:
        yaw = -yaw
    return Boxes(center, boxes.size * draw.scale, _wrap(yaw), boxes.label, velocity, boxes.num_points,
                 boxes.attribute)
