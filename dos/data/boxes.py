"""3D boxes of a scan: the one representation every reader writes and the detector and its metrics read.

Conventions (nuScenes'): a box is its centre (x, y, z) in metres, its size (width, length, height), its yaw
about +z in radians (0 = the length axis along +x), its velocity (vx, vy) in m/s in the same frame (NaN when
unknown), its detection class (an index into DETECTION_CLASSES), the number of LiDAR points inside it
(`num_points`; 0 = fully occluded, which nuScenes' evaluation drops from the ground truth) and its attribute
name ("" when the class has none). Boxes are in the frame of the scan's points (the sensor / ego frame) unless
a reader says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# nuScenes' 10 detection classes, in the devkit's order (detection_cvpr_2019).
DETECTION_CLASSES: tuple[str, ...] = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                                      "motorcycle", "bicycle", "traffic_cone", "barrier")


@dataclass
class Boxes:
    center: np.ndarray                     # [M, 3] float64
    size: np.ndarray                       # [M, 3] float64: width, length, height
    yaw: np.ndarray                        # [M] float64, radians
    label: np.ndarray                      # [M] int64, index into DETECTION_CLASSES
    velocity: np.ndarray | None = None     # [M, 2] float64, NaN = unknown
    num_points: np.ndarray | None = None   # [M] int64
    attribute: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = len(self.center)
        self.center = np.asarray(self.center, dtype=np.float64).reshape(m, 3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(m, 3)
        self.yaw = np.asarray(self.yaw, dtype=np.float64).reshape(m)
        self.label = np.asarray(self.label, dtype=np.int64).reshape(m)
        self.velocity = (np.full((m, 2), np.nan) if self.velocity is None
                         else np.asarray(self.velocity, dtype=np.float64).reshape(m, 2))
        self.num_points = (np.full(m, -1, dtype=np.int64) if self.num_points is None
                           else np.asarray(self.num_points, dtype=np.int64).reshape(m))
        self.attribute = list(self.attribute) if self.attribute else [""] * m
        if len(self.attribute) != m:
            raise ValueError(f"{len(self.attribute)} attributes for {m} boxes")
        if m and (self.label.min() < 0 or self.label.max() >= len(DETECTION_CLASSES)):
            raise ValueError(f"box labels must lie in 0..{len(DETECTION_CLASSES) - 1}")

    def __len__(self) -> int:
        return len(self.center)

    @classmethod
    def empty(cls) -> "Boxes":
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def select(self, keep: np.ndarray) -> "Boxes":
        """The boxes at a boolean mask or index array."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return Boxes(self.center[index], self.size[index], self.yaw[index], self.label[index],
                     self.velocity[index], self.num_points[index], [self.attribute[i] for i in index])

    def names(self) -> list[str]:
        return [DETECTION_CLASSES[i] for i in self.label]


def yaw_to_quaternion(yaw: np.ndarray) -> np.ndarray:
    """[M] yaw about +z -> [M, 4] unit quaternions (w, x, y, z), nuScenes' `rotation`."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], axis=-1)


def quaternion_to_yaw(q: np.ndarray) -> np.ndarray:
    """[M, 4] quaternions (w, x, y, z) -> [M] yaw: the heading of the rotated +x axis in the xy plane (as the
    devkit's `quaternion_yaw`)."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    w, x, y, z = q.T
    # first column of the rotation matrix: (1 - 2(y^2 + z^2), 2(xy + wz), 2(xz - wy))
    return np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles in radians wrapped into [-pi, pi)."""
    return (np.asarray(angle, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """[..., 4] quaternions (w, x, y, z), normalised here -> [..., 3, 3] rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def to_box_frame(points: np.ndarray, boxes: Boxes) -> np.ndarray:
    """[N, 3] points -> [M, N, 3] their coordinates in each box's frame (x along the length, y along the
    width, z up, origin at the centre)."""
    d = np.asarray(points, dtype=np.float64)[None, :, :3] - boxes.center[:, None]
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], axis=-1)


def points_in_boxes(points: np.ndarray, boxes: Boxes, margin: float = 0.0) -> np.ndarray:
    """[M, N] bool: point n lies inside box m grown by `margin` metres on every side (the devkit's
    `points_in_box` for margin 0)."""
    local = np.abs(to_box_frame(points, boxes))
    half = boxes.size[:, None, [1, 0, 2]] / 2 + margin  # (length, width, height) along the box's x, y, z
    return (local <= half).all(axis=-1)
