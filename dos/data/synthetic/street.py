"""Procedural street scenes: the class list, the city styles and the seeded layout.

A street runs along the x axis: road (with lane markings), raised sidewalks on both sides, a strip
of terrain (the set-back), building facades, and the objects of a street (trees, poles, signs,
fences, parked and moving vehicles, two-wheelers, pedestrians, a construction zone with barriers and
cones). Styles are "cities": they change road width, set-back, building heights, vegetation density
and the object mix, so that datasets generated with different styles are different domains.

Every object of a detection class (car, truck, bus, pedestrian, bicycle, motorcycle, traffic cone, barrier)
is recorded as it is built: which solids it is made of, its heading and its nuScenes attribute. Its 3D box
(`StreetObjects.boxes`, world frame) is the tightest box about that heading around its solids, computed from
the solids afterwards, so recording draws nothing from the random generator and changes no solid: scans are
the same with or without it. Objects do not move: a street is built once per sequence and every frame
scans it, so every velocity is (0, 0) ("static scenes"); kerb-parked vehicles are vehicle.parked, vehicles
standing in the lanes vehicle.stopped, two-wheelers cycle.without_rider (none has a rider), pedestrians
pedestrian.standing, cones and barriers have no attribute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dos.data.boxes import DETECTION_CLASSES, Boxes

from .primitives import BOX, ELLIPSOID, Primitives, SceneBuilder

# (train name, raw id, LiDAR reflectivity, is a "thing" with instance ids). Raw ids follow SemanticKITTI
# where it has the class; 90/91 are ours. Raw 0 = unlabelled, 1 = outlier, 60 = lane marking (-> road).
CLASSES: list[tuple[str, int, float, bool]] = [
    ("road", 40, 0.12, False),
    ("sidewalk", 48, 0.22, False),
    ("terrain", 72, 0.30, False),
    ("building", 50, 0.35, False),
    ("vegetation", 70, 0.45, False),
    ("trunk", 71, 0.28, False),
    ("car", 10, 0.55, True),
    ("truck", 18, 0.50, True),
    ("bus", 13, 0.50, True),
    ("bicycle", 11, 0.40, True),
    ("motorcycle", 15, 0.45, True),
    ("pedestrian", 30, 0.25, True),
    ("pole", 80, 0.40, False),
    ("traffic-sign", 81, 0.90, False),
    ("fence", 51, 0.30, False),
    ("barrier", 90, 0.60, False),
    ("traffic-cone", 91, 0.75, True),
]
NAMES = [c[0] for c in CLASSES]
RAW = {c[0]: c[1] for c in CLASSES}
REFLECTIVITY = {c[0]: c[2] for c in CLASSES}
LANE_MARKING_RAW = 60
# Our classes that are nuScenes detection classes (barriers have no instance ids: each barrier is one solid).
DETECTION_NAME = {"car": "car", "truck": "truck", "bus": "bus", "pedestrian": "pedestrian", "bicycle": "bicycle",
                  "motorcycle": "motorcycle", "traffic-cone": "traffic_cone", "barrier": "barrier"}


def learning_map() -> dict[int, int]:
    """Raw id -> train id (-1 = ignore)."""
    mapping = {0: -1, 1: -1, LANE_MARKING_RAW: NAMES.index("road")}
    mapping.update({raw: i for i, (_, raw, _, _) in enumerate(CLASSES)})
    return dict(sorted(mapping.items()))


@dataclass(frozen=True)
class StreetStyle:
    """The look of a city. Ranges are (low, high) for a uniform draw; densities are per 100 m of kerb."""

    name: str
    lanes: tuple[int, int]  # lanes per direction
    lane_width: float
    sidewalk: tuple[float, float]
    curb: float
    setback: tuple[float, float]
    building_height: tuple[float, float]
    building_length: tuple[float, float]
    building_gap: float  # probability of a gap after each building
    balconies: bool
    tree_spacing: float
    tree_prob: float
    crown: tuple[float, float]
    bushes: float
    parked: float
    moving: int
    vehicle_mix: tuple[float, float, float]  # car, truck, bus
    pedestrians: float
    two_wheelers: float
    pole_spacing: float
    signs: float
    fence_prob: float
    works_prob: float  # probability of a construction zone (barriers and cones)
    cross_prob: float  # probability of a cross street
    hedges: float  # probability that a stretch of set-back has a hedge

    def as_dict(self) -> dict:
        return asdict(self)


STYLES: dict[str, StreetStyle] = {
    # Dense mixed city (Boston / Singapore): narrow road, mid-rise, many trees and pedestrians.
    "nuscenes": StreetStyle("nuscenes", lanes=(1, 2), lane_width=3.2, sidewalk=(2.0, 3.5), curb=0.15,
                            setback=(0.0, 3.0), building_height=(6.0, 25.0), building_length=(8.0, 25.0),
                            building_gap=0.2, balconies=False, tree_spacing=10.0, tree_prob=0.7, crown=(2.5, 3.5),
                            bushes=2.0, parked=8.0, moving=6, vehicle_mix=(0.7, 0.2, 0.1), pedestrians=6.0,
                            two_wheelers=2.0, pole_spacing=25.0, signs=3.0, fence_prob=0.2, works_prob=0.5,
                            cross_prob=0.5, hedges=0.3),
    # Suburban arterial (Phoenix): wide multi-lane road, low buildings far back, sparse trees, lots of terrain.
    "waymo": StreetStyle("waymo", lanes=(2, 3), lane_width=3.6, sidewalk=(1.5, 2.0), curb=0.12,
                         setback=(6.0, 15.0), building_height=(4.0, 9.0), building_length=(15.0, 40.0),
                         building_gap=0.35, balconies=False, tree_spacing=20.0, tree_prob=0.5, crown=(2.0, 3.0),
                         bushes=4.0, parked=3.0, moving=12, vehicle_mix=(0.65, 0.3, 0.05), pedestrians=1.0,
                         two_wheelers=0.5, pole_spacing=35.0, signs=2.0, fence_prob=0.25, works_prob=0.3,
                         cross_prob=0.4, hedges=0.3),
    # Residential Karlsruhe: one lane, many parked cars, dense trees, bushes and fences.
    "semantickitti": StreetStyle("semantickitti", lanes=(1, 1), lane_width=3.0, sidewalk=(1.5, 2.5), curb=0.12,
                                 setback=(2.0, 8.0), building_height=(8.0, 18.0), building_length=(10.0, 25.0),
                                 building_gap=0.3, balconies=False, tree_spacing=8.0, tree_prob=0.9,
                                 crown=(3.0, 4.5), bushes=8.0, parked=9.0, moving=3, vehicle_mix=(0.9, 0.08, 0.02),
                                 pedestrians=1.5, two_wheelers=1.5, pole_spacing=20.0, signs=2.0, fence_prob=0.35,
                                 works_prob=0.15, cross_prob=0.3, hedges=0.5),
    # Paris (unseen): contiguous tall facades on wide sidewalks, balconies, buses, many two-wheelers.
    "parisluco": StreetStyle("parisluco", lanes=(1, 2), lane_width=3.0, sidewalk=(3.0, 6.0), curb=0.18,
                             setback=(0.0, 0.0), building_height=(15.0, 24.0), building_length=(10.0, 20.0),
                             building_gap=0.0, balconies=True, tree_spacing=8.0, tree_prob=0.7, crown=(2.0, 3.0),
                             bushes=0.0, parked=10.0, moving=5, vehicle_mix=(0.6, 0.1, 0.3), pedestrians=10.0,
                             two_wheelers=6.0, pole_spacing=15.0, signs=5.0, fence_prob=0.05, works_prob=0.4,
                             cross_prob=0.6, hedges=0.0),
}


def _gray(level: float) -> tuple[float, float, float]:
    return (level, level, level)


class _Street:
    """One street layout being built: geometry drawn once, then one method per kind of object."""

    def __init__(self, style: StreetStyle, rng: np.random.Generator, half_length: float, ego_x: tuple[float, float]):
        self.s, self.rng, self.X = style, rng, half_length
        self.b = SceneBuilder()
        self.next_instance = 1
        # detection-class objects: (class, solids [start, end), yaw, instance id, attribute)
        self.objects: list[tuple[str, int, int, float, int, str]] = []
        lanes = int(rng.integers(style.lanes[0], style.lanes[1] + 1))
        self.lanes = lanes
        self.W = lanes * style.lane_width  # road half width
        self.sidewalk = float(rng.uniform(*style.sidewalk))
        self.setback = float(rng.uniform(*style.setback))
        self.ego_y = -0.5 * style.lane_width  # drive in the right-hand lane nearest the centre line
        self.ego_x = ego_x
        self.cross = None
        if rng.uniform() < style.cross_prob:
            width = float(rng.uniform(6.0, 12.0))
            self.cross = (float(rng.uniform(-0.5, 0.5) * half_length), width)

    # -- helpers -------------------------------------------------------------------------------------
    def instance(self) -> int:
        self.next_instance += 1
        return self.next_instance - 1

    def record(self, kind: str, start: int, yaw: float, instance: int, attribute: str) -> None:
        """Record the object made of the solids added since `start` (no random draw, no solid changed)."""
        self.objects.append((kind, start, len(self.b), float(yaw), instance, attribute))

    def in_cross(self, x: np.ndarray | float, margin: float = 0.0) -> np.ndarray | bool:
        if self.cross is None:
            return np.zeros_like(np.asarray(x), dtype=bool)
        xc, w = self.cross
        return np.abs(np.asarray(x) - xc) < 0.5 * w + self.sidewalk + margin

    def slots(self, per_100m: float) -> np.ndarray:
        """Random positions along x with the given density (a Poisson process), outside the cross street."""
        n = self.rng.poisson(per_100m * 2.0 * self.X / 100.0)
        x = np.sort(self.rng.uniform(-self.X, self.X, size=n))
        return x[~self.in_cross(x, 1.0)]

    def spaced(self, spacing: float, prob: float) -> np.ndarray:
        x = np.arange(-self.X, self.X, spacing) + self.rng.uniform(0, spacing)
        x = x + self.rng.normal(0, 0.1 * spacing, size=len(x))
        x = x[self.rng.uniform(size=len(x)) < prob]
        return x[~self.in_cross(x, 1.0)]

    def segments(self) -> list[tuple[float, float]]:
        """The stretches of kerb along x, interrupted by the cross street."""
        if self.cross is None:
            return [(-self.X, self.X)]
        xc, w = self.cross
        half = 0.5 * w + self.sidewalk
        return [(-self.X, xc - half), (xc + half, self.X)]

    # -- ground ---------------------------------------------------------------------------------------
    def ground(self) -> None:
        s, b, X, W = self.s, self.b, self.X, self.W
        b.box((0, 0, -0.5), (X, W, 0.5), label=RAW["road"], reflectivity=REFLECTIVITY["road"])
        far = W + self.sidewalk + self.setback + 60.0
        if self.cross is not None:
            xc, w = self.cross
            b.box((xc, 0, -0.5), (0.5 * w, far, 0.5), label=RAW["road"], reflectivity=REFLECTIVITY["road"])
            for side in (-1, 1):
                for dx in (-1, 1):
                    x = xc + dx * (0.5 * w + 0.5 * self.sidewalk)
                    y = side * 0.5 * (W + far)
                    b.box((x, y, s.curb - 0.5), (0.5 * self.sidewalk, 0.5 * (far - W), 0.5),
                          label=RAW["sidewalk"], reflectivity=REFLECTIVITY["sidewalk"])
        for x0, x1 in self.segments():
            xm, hx = 0.5 * (x0 + x1), 0.5 * (x1 - x0)
            for side in (-1, 1):
                y_sw = side * (W + 0.5 * self.sidewalk)
                b.box((xm, y_sw, s.curb - 0.5), (hx, 0.5 * self.sidewalk, 0.5), label=RAW["sidewalk"],
                      reflectivity=REFLECTIVITY["sidewalk"])
                inner = W + self.sidewalk
                y_t = side * 0.5 * (inner + far)
                b.box((xm, y_t, s.curb + 0.03 - 0.5), (hx, 0.5 * (far - inner), 0.5), label=RAW["terrain"],
                      reflectivity=REFLECTIVITY["terrain"])
                # Mild relief of the terrain: flattened ellipsoids rising a little above it.
                if self.setback > 1.0:
                    for x in self.slots(6.0):
                        if not x0 + 3 < x < x1 - 3:
                            continue
                        r = self.rng.uniform(2.0, 5.0, size=2)
                        y = side * (inner + self.rng.uniform(0.3, 1.0) * self.setback)
                        b.ellipsoid((x, y, s.curb), (r[0], min(r[1], self.setback), self.rng.uniform(0.1, 0.35)),
                                    self.rng.uniform(0, np.pi), label=RAW["terrain"],
                                    reflectivity=REFLECTIVITY["terrain"])
        # Dashed centre line and lane lines: raised by 5 mm, bright, labelled as lane marking (-> road).
        for k in range(-self.lanes + 1, self.lanes):
            y = k * s.lane_width
            for x in np.arange(-X, X, 9.0):
                if not self.in_cross(x + 1.5):
                    b.box((x + 1.5, y, 0.0025), (1.5, 0.07, 0.0025), label=LANE_MARKING_RAW, reflectivity=0.8)

    # -- structures -----------------------------------------------------------------------------------
    def buildings(self) -> None:
        s, rng = self.s, self.rng
        y_front = self.W + self.sidewalk + self.setback
        for side in (-1, 1):
            for x0, x1 in self.segments():
                x = x0
                while x < x1:
                    length = min(float(rng.uniform(*s.building_length)), x1 - x)
                    height = float(rng.uniform(*s.building_height))
                    depth = float(rng.uniform(8.0, 20.0))
                    setback = y_front + float(rng.uniform(0.0, 2.0)) * (s.setback[1] > 0)
                    cy = side * (setback + 0.5 * depth)
                    gray = float(rng.uniform(90, 220))
                    refl = REFLECTIVITY["building"] * rng.uniform(0.7, 1.3)
                    self.b.box((x + 0.5 * length, cy, s.curb + 0.5 * height), (0.5 * length, 0.5 * depth, 0.5 * height),
                               label=RAW["building"], reflectivity=refl, color=_gray(gray))
                    if s.balconies and length > 4:
                        for z in np.arange(s.curb + 6.0, s.curb + height - 1.0, 3.2):
                            self.b.box((x + 0.5 * length, side * (setback - 0.4), z), (0.5 * length - 1.0, 0.4, 0.08),
                                       label=RAW["building"], reflectivity=refl)
                    x += length
                    if rng.uniform() < s.building_gap:
                        x += float(rng.uniform(3.0, 12.0))

    def fences(self) -> None:
        s, rng = self.s, self.rng
        y = self.W + self.sidewalk + 0.3
        for side in (-1, 1):
            for x0, x1 in self.segments():
                x = x0
                while x < x1:
                    length = min(float(rng.uniform(8.0, 30.0)), x1 - x)
                    if rng.uniform() < s.fence_prob and self.setback > 0.5:
                        h = float(rng.uniform(0.8, 2.0))
                        self.b.box((x + 0.5 * length, side * y, s.curb + 0.5 * h), (0.5 * length, 0.03, 0.5 * h),
                                   label=RAW["fence"], reflectivity=REFLECTIVITY["fence"])
                    x += length + float(rng.uniform(2.0, 10.0))

    def vegetation(self) -> None:
        s, rng, b = self.s, self.rng, self.b
        for side in (-1, 1):
            # Street trees at the kerb side of the sidewalk (or in the set-back when there is one).
            for x in self.spaced(s.tree_spacing, s.tree_prob):
                y = side * (self.W + (0.6 if self.setback < 2 else self.sidewalk + 0.5 * self.setback))
                trunk_h = float(rng.uniform(2.0, 4.0))
                r = float(rng.uniform(0.12, 0.35))
                b.cylinder((x, y, s.curb + 0.5 * trunk_h), r, 0.5 * trunk_h, label=RAW["trunk"],
                           reflectivity=REFLECTIVITY["trunk"])
                crown = rng.uniform(*s.crown)
                for _ in range(int(rng.integers(1, 4))):
                    off = rng.normal(0, 0.3 * crown, size=2)
                    radii = crown * rng.uniform(0.7, 1.1, size=3) * np.array([1, 1, 0.9])
                    b.ellipsoid((x + off[0], y + off[1], s.curb + trunk_h + 0.7 * radii[2]), radii,
                                rng.uniform(0, np.pi), label=RAW["vegetation"],
                                reflectivity=REFLECTIVITY["vegetation"] * rng.uniform(0.8, 1.2))
            # Trees in front gardens, and hedges along stretches of the set-back.
            if self.setback > 3.0:
                for x in self.spaced(1.5 * s.tree_spacing, s.tree_prob):
                    y = side * (self.W + self.sidewalk + rng.uniform(0.3, 0.8) * self.setback)
                    trunk_h = float(rng.uniform(1.5, 3.0))
                    b.cylinder((x, y, s.curb + 0.5 * trunk_h), float(rng.uniform(0.1, 0.25)), 0.5 * trunk_h,
                               label=RAW["trunk"], reflectivity=REFLECTIVITY["trunk"])
                    radii = rng.uniform(*s.crown) * rng.uniform(0.6, 1.0, size=3)
                    b.ellipsoid((x, y, s.curb + trunk_h + 0.7 * radii[2]), radii, rng.uniform(0, np.pi),
                                label=RAW["vegetation"], reflectivity=REFLECTIVITY["vegetation"])
            if self.setback > 1.5:
                for x0, x1 in self.segments():
                    x = x0
                    while x < x1:
                        length = min(float(rng.uniform(8.0, 25.0)), x1 - x)
                        if rng.uniform() < s.hedges:
                            h, d = float(rng.uniform(0.8, 1.8)), float(rng.uniform(0.3, 0.6))
                            y = side * (self.W + self.sidewalk + 0.5 * self.setback)
                            b.box((x + 0.5 * length, y, s.curb + 0.5 * h), (0.5 * length, d, 0.5 * h),
                                  label=RAW["vegetation"], reflectivity=REFLECTIVITY["vegetation"])
                        x += length + float(rng.uniform(2.0, 8.0))
            # Bushes in the set-back.
            if self.setback > 1.0:
                for x in self.slots(s.bushes):
                    radii = rng.uniform(0.5, 1.5, size=3) * np.array([1.5, 1.0, 0.8])
                    y = side * (self.W + self.sidewalk + rng.uniform(0.2, 0.9) * self.setback)
                    b.ellipsoid((x, y, s.curb + 0.4 * radii[2]), radii, rng.uniform(0, np.pi),
                                label=RAW["vegetation"], reflectivity=REFLECTIVITY["vegetation"])

    def street_furniture(self) -> None:
        s, rng, b = self.s, self.rng, self.b
        for side in (-1, 1):
            y = side * (self.W + 0.35)
            for x in self.spaced(s.pole_spacing, 0.9):  # street lights with an arm over the road
                h = float(rng.uniform(5.0, 9.0))
                b.cylinder((x, y, s.curb + 0.5 * h), float(rng.uniform(0.08, 0.15)), 0.5 * h, label=RAW["pole"],
                           reflectivity=REFLECTIVITY["pole"])
                b.box((x, y - side * 0.9, s.curb + h - 0.1), (0.08, 0.9, 0.06), label=RAW["pole"],
                      reflectivity=REFLECTIVITY["pole"])
            for x in self.slots(s.signs):  # a post and a plate facing the traffic
                h = float(rng.uniform(2.0, 2.8))
                b.cylinder((x, y, s.curb + 0.5 * h), 0.04, 0.5 * h, label=RAW["pole"], reflectivity=REFLECTIVITY["pole"])
                size = rng.uniform(0.25, 0.45, size=2)
                b.box((x, y, s.curb + h + size[1]), (0.02, size[0], size[1]), label=RAW["traffic-sign"],
                      reflectivity=REFLECTIVITY["traffic-sign"])

    # -- movable objects ------------------------------------------------------------------------------
    def vehicle(self, kind: str, x: float, y: float, yaw: float, attribute: str) -> None:
        rng, b = self.rng, self.b
        start = len(b)
        label, inst = RAW[kind], self.instance()
        refl = float(rng.uniform(0.3, 1.0)) * REFLECTIVITY[kind] * 1.4
        c, s = np.cos(yaw), np.sin(yaw)

        def at(dx: float, dy: float, z: float) -> tuple[float, float, float]:
            return (x + c * dx - s * dy, y + s * dx + c * dy, z)

        if kind == "car":
            L, Wd = rng.uniform(1.9, 2.5), rng.uniform(0.85, 1.0)
            b.box(at(0, 0, 0.75), (L, Wd, 0.4), yaw, label=label, instance=inst, reflectivity=refl)
            b.box(at(-0.2 * L, 0, 1.45), (0.55 * L, 0.9 * Wd, 0.32), yaw, label=label, instance=inst, reflectivity=refl)
            wheels, wr = [(0.65 * L, 1), (-0.65 * L, 1)], 0.33
        elif kind == "truck":
            L, Wd = rng.uniform(3.0, 5.0), 1.25
            b.box(at(L + 0.9, 0, 1.6), (0.9, Wd, 1.2), yaw, label=label, instance=inst, reflectivity=refl)
            b.box(at(-0.1, 0, 2.0), (L - 0.1, Wd, rng.uniform(1.2, 1.7)), yaw, label=label, instance=inst,
                  reflectivity=refl)
            wheels, wr = [(L + 0.9, 1), (-0.6 * L, 1), (0.2 * L, 1)], 0.5
        elif kind == "bus":
            L, Wd = rng.uniform(5.0, 6.5), 1.3
            b.box(at(0, 0, 1.85), (L, Wd, 1.5), yaw, label=label, instance=inst, reflectivity=refl)
            wheels, wr = [(0.7 * L, 1), (-0.6 * L, 1)], 0.5
        else:
            raise ValueError(kind)
        for dx, _ in wheels:
            for sgn in (-1, 1):
                b.ellipsoid(at(dx, sgn * (Wd - 0.1), wr), (wr, 0.13, wr), yaw, label=label, instance=inst,
                            reflectivity=0.1)
        self.record(kind, start, yaw, inst, attribute)

    def two_wheeler(self, kind: str, x: float, y: float, yaw: float, z: float = 0.0) -> None:
        rng, b = self.rng, self.b
        start = len(b)
        label, inst = RAW[kind], self.instance()
        c, s = np.cos(yaw), np.sin(yaw)
        big = kind == "motorcycle"
        wr = 0.32 if big else 0.35
        refl = REFLECTIVITY[kind] * float(rng.uniform(0.7, 1.3))
        for dx in (-0.7 if big else -0.55, 0.7 if big else 0.55):
            b.ellipsoid((x + c * dx, y + s * dx, z + wr), (wr, 0.09 if big else 0.03, wr), yaw, label=label, instance=inst,
                        reflectivity=0.15)
        if big:
            b.box((x, y, z + 0.65), (0.55, 0.2, 0.22), yaw, label=label, instance=inst, reflectivity=refl)
            b.box((x + c * 0.55, y + s * 0.55, z + 1.0), (0.05, 0.35, 0.04), yaw, label=label, instance=inst,
                  reflectivity=refl)
        else:
            b.box((x, y, z + 0.62), (0.45, 0.03, 0.03), yaw, label=label, instance=inst, reflectivity=refl)
            b.box((x - c * 0.2, y - s * 0.2, z + 0.8), (0.12, 0.08, 0.03), yaw, label=label, instance=inst, reflectivity=refl)
            b.box((x + c * 0.5, y + s * 0.5, z + 1.0), (0.03, 0.3, 0.03), yaw, label=label, instance=inst, reflectivity=refl)
        self.record(kind, start, yaw, inst, "cycle.without_rider")

    def pedestrian(self, x: float, y: float, z: float) -> None:
        rng, b = self.rng, self.b
        start = len(b)
        inst, k = self.instance(), float(rng.uniform(0.85, 1.1))
        yaw = float(rng.uniform(0, 2 * np.pi))
        refl = REFLECTIVITY["pedestrian"] * float(rng.uniform(0.6, 1.6))
        lab = RAW["pedestrian"]
        b.box((x, y, z + 0.42 * k), (0.12 * k, 0.18 * k, 0.42 * k), yaw, label=lab, instance=inst, reflectivity=refl)
        b.ellipsoid((x, y, z + 1.15 * k), (0.15 * k, 0.24 * k, 0.32 * k), yaw, label=lab, instance=inst,
                    reflectivity=refl)
        b.ellipsoid((x, y, z + 1.58 * k), (0.1 * k, 0.1 * k, 0.12 * k), yaw, label=lab, instance=inst,
                    reflectivity=refl)
        self.record("pedestrian", start, yaw, inst, "pedestrian.standing")

    def traffic(self) -> None:
        s, rng, W = self.s, self.rng, self.W
        mix = np.array(s.vehicle_mix) / np.sum(s.vehicle_mix)
        kinds = ("car", "truck", "bus")
        ego0, ego1 = self.ego_x

        def clear_of_ego(x: float, y: float) -> bool:
            return not (abs(y - self.ego_y) < 2.5 and ego0 - 12 < x < ego1 + 12)

        # Parked along both kerbs, nose to tail with random gaps.
        for side in (-1, 1):
            for x in self.slots(s.parked):
                kind = "car" if rng.uniform() < 0.92 else "truck"  # buses do not park at the kerb
                y = side * (W - 1.1)
                if clear_of_ego(x, y):
                    self.vehicle(kind, float(x), y, 0.0 if rng.uniform() < 0.5 else np.pi, "vehicle.parked")
        # Moving in the lanes, heading with the traffic of their side.
        for _ in range(s.moving):
            lane = int(rng.integers(0, self.lanes))
            side = -1 if rng.uniform() < 0.5 else 1
            y = side * (lane + 0.5) * s.lane_width
            x = float(rng.uniform(-self.X, self.X))
            if clear_of_ego(x, y) and not self.in_cross(x):
                kind = kinds[int(rng.choice(3, p=mix))]
                self.vehicle(kind, x, y, (0.0 if side < 0 else np.pi) + rng.normal(0, 0.03), "vehicle.stopped")
        # Two-wheelers parked on the sidewalk (some ridden on the road edge).
        for side in (-1, 1):
            for x in self.slots(s.two_wheelers):
                kind = "motorcycle" if rng.uniform() < 0.4 else "bicycle"
                on_road = rng.uniform() < 0.3
                y = side * (W - 0.8) if on_road else side * (W + 0.8 + rng.uniform(0, 0.5) * self.sidewalk)
                z = 0.0 if on_road else s.curb
                if clear_of_ego(x, y):
                    yaw = 0.0 if on_road else float(rng.uniform(0, np.pi))
                    self.two_wheeler(kind, float(x), float(y), yaw, z)
        # Pedestrians on the sidewalks, a few crossing.
        for side in (-1, 1):
            for x in self.slots(s.pedestrians):
                crossing = rng.uniform() < 0.1
                y = float(rng.uniform(-W, W)) if crossing else side * (W + rng.uniform(0.3, 0.95) * self.sidewalk)
                if clear_of_ego(x, y):
                    self.pedestrian(float(x), y, 0.0 if crossing else s.curb)

    def works(self) -> None:
        """A construction zone near the sensor's path: a row of barriers along the kerb and cones around it."""
        rng, b, W = self.rng, self.b, self.W
        if rng.uniform() >= self.s.works_prob:
            return
        side = 1 if self.lanes == 1 or rng.uniform() < 0.5 else -1  # never in the ego lane
        x0 = 0.5 * (self.ego_x[0] + self.ego_x[1]) + float(rng.uniform(-35.0, 25.0))
        n = int(rng.integers(3, 8))
        y = side * (W - 1.0)
        for i in range(n):
            start = len(b)
            b.box((x0 + 2.1 * i, y, 0.4), (1.0, 0.3, 0.4), label=RAW["barrier"], reflectivity=REFLECTIVITY["barrier"])
            self.record("barrier", start, 0.0, 0, "")
        for i in range(int(rng.integers(2, 7))):
            x = x0 - 3.0 + 2.1 * (n + 2) * rng.uniform()
            yc = y - side * 1.0
            inst = self.instance()
            start = len(b)
            for z, r in ((0.1, 0.18), (0.3, 0.12), (0.5, 0.06)):
                b.cylinder((x, yc, z), r, 0.1, label=RAW["traffic-cone"], instance=inst,
                           reflectivity=REFLECTIVITY["traffic-cone"])
            self.record("traffic-cone", start, 0.0, inst, "")


@dataclass
class StreetObjects:
    """The detection-class objects of a street: their boxes (world frame, velocity 0, num_points unset), their
    instance ids (0 for barriers) and the solids each is made of ([start, end) rows of the street's solids)."""

    boxes: Boxes
    instance: np.ndarray  # [M] int64
    solids: np.ndarray  # [M, 2] int64


def _extent(prims: Primitives, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(centres [P, 3], half extents [P, 3]) of the solids in a frame turned by `yaw` about z: the box about
    that heading that holds each solid exactly."""
    c, s = np.cos(yaw), np.sin(yaw)
    center = np.stack([c * prims.center[:, 0] + s * prims.center[:, 1],
                       -s * prims.center[:, 0] + c * prims.center[:, 1], prims.center[:, 2]], axis=1)
    turn = prims.yaw - yaw
    cos, sin = np.abs(np.cos(turn)), np.abs(np.sin(turn))
    a, b = prims.half[:, 0], prims.half[:, 1]
    corners = np.stack([cos * a + sin * b, sin * a + cos * b], axis=1)  # a turned box
    tangents = np.stack([np.hypot(cos * a, sin * b), np.hypot(sin * a, cos * b)], axis=1)  # a turned ellipse
    xy = np.where((prims.kind == BOX)[:, None], corners,
                  np.where((prims.kind == ELLIPSOID)[:, None], tangents, prims.half[:, :2]))  # cylinder: radius
    return center, np.concatenate([xy, prims.half[:, 2:]], axis=1)


def street_objects(prims: Primitives, objects: list[tuple[str, int, int, float, int, str]]) -> StreetObjects:
    """The boxes of recorded objects, from the solids they are made of."""
    center, size = np.zeros((len(objects), 3)), np.zeros((len(objects), 3))
    for i, (_, start, end, heading, _, _) in enumerate(objects):
        local, half = _extent(prims.subset(slice(start, end)), heading)
        low, high = (local - half).min(axis=0), (local + half).max(axis=0)
        mid = 0.5 * (low + high)
        c, s = np.cos(heading), np.sin(heading)
        center[i] = (c * mid[0] - s * mid[1], s * mid[0] + c * mid[1], mid[2])
        size[i] = (high[1] - low[1], high[0] - low[0], high[2] - low[2])  # width (y), length (x), height
    label = np.array([DETECTION_CLASSES.index(DETECTION_NAME[o[0]]) for o in objects], dtype=np.int64)
    boxes = Boxes(center, size, np.array([o[3] for o in objects]), label, np.zeros((len(objects), 2)), None,
                  [o[5] for o in objects])
    return StreetObjects(boxes, np.array([o[4] for o in objects], dtype=np.int64),
                         np.array([o[1:3] for o in objects], dtype=np.int64).reshape(-1, 2))


def build_street_objects(style: StreetStyle, rng: np.random.Generator, half_length: float,
                         ego_x: tuple[float, float] = (0.0, 0.0)) -> tuple[Primitives, float, StreetObjects]:
    """`build_street`, plus the detection-class objects of the street."""
    street = _Street(style, rng, half_length, ego_x)
    street.ground()
    street.buildings()
    street.fences()
    street.vegetation()
    street.street_furniture()
    street.traffic()
    street.works()
    prims = street.b.build()
    return prims, street.ego_y, street_objects(prims, street.objects)


def build_street(style: StreetStyle, rng: np.random.Generator, half_length: float,
                 ego_x: tuple[float, float] = (0.0, 0.0)) -> tuple[Primitives, float]:
    """Lay out one street of length 2 * half_length. Returns (solids, y of the ego lane).

    `ego_x` is the stretch the sensor drives along (at y = ego lane, z = 0); no vehicle is put there.
    """
    prims, ego_y, _ = build_street_objects(style, rng, half_length, ego_x)
    return prims, ego_y
