"""Analytic solids that synthetic scenes are made of, and a builder that collects them.

Three kinds suffice for streets and rooms: oriented boxes, vertical cylinders and ellipsoids,
each rotated about the vertical axis by a yaw angle. A scene is a struct of arrays (one row per
solid) so that ray casting can test many solids at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

BOX, CYLINDER, ELLIPSOID = 0, 1, 2


@dataclass
class Primitives:
    """P solids. `half` holds box half-extents, (radius, radius, half-height) of a cylinder, or ellipsoid radii."""

    kind: np.ndarray  # [P] int64
    center: np.ndarray  # [P, 3] float64
    half: np.ndarray  # [P, 3] float64
    yaw: np.ndarray  # [P] float64, rotation about +z
    label: np.ndarray  # [P] int64, class id of every point on the solid
    instance: np.ndarray  # [P] int64, object id (0 / -1 for stuff, by the caller's convention)
    reflectivity: np.ndarray  # [P] float64 in [0, 1], LiDAR material
    color: np.ndarray  # [P, 3] float64 in [0, 255], mean RGB of the surface

    def __len__(self) -> int:
        return len(self.kind)

    def subset(self, mask_or_index: np.ndarray) -> "Primitives":
        return Primitives(**{f.name: getattr(self, f.name)[mask_or_index] for f in fields(self)})

    def bounding_radius(self) -> np.ndarray:
        """Radius of a sphere around `center` that holds the whole solid (used to cull rays cheaply)."""
        return np.linalg.norm(self.half, axis=1)

    def transformed(self, yaw: float, shift: np.ndarray) -> "Primitives":
        """Rotate every solid by `yaw` about the origin's vertical axis, then translate by `shift`."""
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        out = self.subset(slice(None))
        out.center = self.center @ rot.T + np.asarray(shift, dtype=np.float64)
        out.yaw = self.yaw + yaw
        return out


class SceneBuilder:
    """Collects solids one by one (per-object Python is fine; per-point work is vectorised elsewhere)."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []

    def _add(self, kind: int, center, half, yaw: float, label: int, instance: int, reflectivity: float, color) -> None:
        self._rows.append((kind, tuple(map(float, center)), tuple(map(float, half)), float(yaw), int(label),
                           int(instance), float(reflectivity), tuple(map(float, color))))

    def box(self, center, half, yaw: float = 0.0, *, label: int, instance: int = 0,
            reflectivity: float = 0.3, color=(128, 128, 128)) -> None:
        self._add(BOX, center, half, yaw, label, instance, reflectivity, color)

    def cylinder(self, center, radius: float, half_height: float, *, label: int, instance: int = 0,
                 reflectivity: float = 0.3, color=(128, 128, 128)) -> None:
        self._add(CYLINDER, center, (radius, radius, half_height), 0.0, label, instance, reflectivity, color)

    def ellipsoid(self, center, radii, yaw: float = 0.0, *, label: int, instance: int = 0,
                  reflectivity: float = 0.3, color=(128, 128, 128)) -> None:
        self._add(ELLIPSOID, center, radii, yaw, label, instance, reflectivity, color)

    def extend(self, other: "SceneBuilder") -> None:
        self._rows.extend(other._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def build(self) -> Primitives:
        if not self._rows:
            raise ValueError("a scene needs at least one solid")
        kind, center, half, yaw, label, instance, refl, color = zip(*self._rows)
        return Primitives(
            kind=np.asarray(kind, dtype=np.int64),
            center=np.asarray(center, dtype=np.float64).reshape(-1, 3),
            half=np.asarray(half, dtype=np.float64).reshape(-1, 3),
            yaw=np.asarray(yaw, dtype=np.float64),
            label=np.asarray(label, dtype=np.int64),
            instance=np.asarray(instance, dtype=np.int64),
            reflectivity=np.asarray(refl, dtype=np.float64),
            color=np.asarray(color, dtype=np.float64).reshape(-1, 3),
        )
