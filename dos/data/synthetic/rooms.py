"""Procedural rooms scanned from a few viewpoints, like ScanNet reconstructions.

A room is a floor and four walls (no ceiling: hand-held scans rarely capture one) furnished by room
type (living room, bedroom, office, kitchen, bathroom). Furniture is sampled over the 200 fine
classes of `furniture.py`. The room is "scanned" by casting rays from 2-4 camera positions, so
only surfaces visible from a camera get points (occlusion is real). Each point carries colour
(class colour, lighting, shading, noise), a normal facing the camera, the 20- and 200-class labels
and an instance id.
"""

from __future__ import annotations

import numpy as np

from .furniture import FINE, NAMES20, FineClass, Obj
from .primitives import Primitives, SceneBuilder
from .raycast import cast, normals

ROOM_TYPES = {  # probability, (min, max) side length, coarse-class weights of the furniture
    "living": (0.25, (4.0, 8.0), {"sofa": 3, "table": 3, "chair": 3, "otherfurniture": 6, "cabinet": 2,
                                  "bookshelf": 1.5, "picture": 2, "curtain": 1.5, "desk": 0.3}),
    "bedroom": (0.25, (3.5, 6.0), {"bed": 2, "cabinet": 3, "chair": 1.5, "desk": 1, "otherfurniture": 4,
                                   "picture": 1.5, "curtain": 1.5, "bookshelf": 0.8, "table": 0.7, "sofa": 0.3}),
    "office": (0.2, (4.0, 8.0), {"desk": 4, "chair": 6, "cabinet": 3, "bookshelf": 2, "table": 1.5,
                                 "otherfurniture": 4, "picture": 0.5}),
    "kitchen": (0.15, (3.0, 6.0), {"counter": 4, "cabinet": 4, "refrigerator": 1, "sink": 1.5, "table": 1.5,
                                   "chair": 3, "otherfurniture": 2}),
    "bathroom": (0.15, (2.0, 3.5), {"toilet": 1.5, "sink": 2, "bathtub": 1, "shower curtain": 1, "cabinet": 1.5,
                                    "otherfurniture": 1.5, "curtain": 0.3}),
}
STRUCTURE_PER_ROOM = {"wall": 1.0, "floor": 1.0, "door": 1.5, "window": 1.5}  # expected instances per room
OBJECTS_PER_ROOM = (5, 14)

_COARSE_OF = np.array([f.coarse for f in FINE])
_WEIGHT = np.array([f.weight for f in FINE])


def _fine_probs(coarse_weights: dict[str, float]) -> np.ndarray:
    """Probability of each fine class for one furniture draw, given coarse-class weights."""
    p = np.zeros(len(FINE))
    for coarse, w in coarse_weights.items():
        members = _COARSE_OF == NAMES20.index(coarse)
        p[members] = w * _WEIGHT[members] / _WEIGHT[members].sum()
    return p / p.sum()


def _structure_probs(coarse: str) -> np.ndarray:
    return _fine_probs({coarse: 1.0})


def expected_frequency() -> np.ndarray:
    """Expected instances of each fine class per room (the design prior that ranks head/common/tail)."""
    mean_objects = 0.5 * sum(OBJECTS_PER_ROOM)
    freq = sum(p * mean_objects * _fine_probs(w) for p, _, w in ROOM_TYPES.values())
    return freq + sum(n * _structure_probs(c) for c, n in STRUCTURE_PER_ROOM.items())


def frequency_split() -> dict[str, list[int]]:
    """ScanNet200-style split of the 200 fine classes by frequency: 66 head, 68 common, 66 tail."""
    order = np.argsort(-expected_frequency(), kind="stable")
    return {"head": sorted(order[:66].tolist()), "common": sorted(order[66:134].tolist()),
            "tail": sorted(order[134:].tolist())}


# -- layout -----------------------------------------------------------------------------------------------------
_WALL_YAW = (0.0, 0.5 * np.pi, np.pi, -0.5 * np.pi)  # local +y points into the room


class _Room:
    def __init__(self, rng: np.random.Generator, room_type: str):
        self.rng, self.type = rng, room_type
        lo, hi = ROOM_TYPES[room_type][1]
        self.L = rng.uniform(lo, hi, size=2)
        self.H = float(rng.uniform(2.5, 3.2))
        self.b = SceneBuilder()
        self.boxes: list[np.ndarray] = []  # floor footprints [xmin, xmax, ymin, ymax]
        self.mounted: list[list[tuple[float, float]]] = [[], [], [], []]  # occupied intervals along each wall
        self.next_instance = 0
        self._tables: list[tuple[float, float, float, float]] = []  # (x, y, hx, hy) of placed tables

    def _free(self, box: np.ndarray, ignore: int | None = None) -> bool:
        if box[0] < -1e-6 or box[2] < -1e-6 or box[1] > self.L[0] + 1e-6 or box[3] > self.L[1] + 1e-6:
            return False
        return all(i == ignore or box[1] <= o[0] or box[0] >= o[1] or box[3] <= o[2] or box[2] >= o[3]
                   for i, o in enumerate(self.boxes))

    def _wall_point(self, wall: int, u: float, inset: float) -> tuple[float, float]:
        """World (x, y) at distance u along `wall` and `inset` into the room."""
        Lx, Ly = self.L
        return [(u, inset), (Lx - inset, u), (Lx - u, Ly - inset), (inset, Ly - u)][wall]

    def _wall_length(self, wall: int) -> float:
        return float(self.L[wall % 2])

    @staticmethod
    def _aabb(x: float, y: float, yaw: float, hx: float, hy: float) -> np.ndarray:
        c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
        ex, ey = c * hx + s * hy, s * hx + c * hy
        return np.array([x - ex, x + ex, y - ey, y + ey])

    def structure(self) -> None:
        rng, (Lx, Ly), H = self.rng, self.L, self.H
        wall = FINE[int(rng.choice(len(FINE), p=_structure_probs("wall")))]
        floor = FINE[int(rng.choice(len(FINE), p=_structure_probs("floor")))]
        wc = np.array(wall.color) * rng.uniform(0.9, 1.1)
        t = 0.1
        self.b.box((0.5 * Lx, 0.5 * Ly, -0.05), (0.5 * Lx + t, 0.5 * Ly + t, 0.05), label=floor.index, instance=-1,
                   color=floor.color)
        for x, y, hx, hy in ((0.5 * Lx, -0.5 * t, 0.5 * Lx + t, 0.5 * t), (0.5 * Lx, Ly + 0.5 * t, 0.5 * Lx + t, 0.5 * t),
                             (-0.5 * t, 0.5 * Ly, 0.5 * t, 0.5 * Ly), (Lx + 0.5 * t, 0.5 * Ly, 0.5 * t, 0.5 * Ly)):
            self.b.box((x, y, 0.5 * H), (hx, hy, 0.5 * H), label=wall.index, instance=-1, color=wc)

    def add(self, fine: FineClass) -> bool:
        """Place one object of a fine class; False when no free spot was found."""
        rng, fam = self.rng, fine.family
        hx, hy, h = (np.array(fam.base) * np.array(fine.scale)).tolist()
        color = np.clip(np.array(fine.color) + rng.normal(0, 10, size=3), 0, 255)
        for _ in range(20):
            if fam.placement in ("wall", "mounted"):
                wall = int(rng.integers(0, 4))
                length = self._wall_length(wall)
                if 2 * hx + 0.1 > length:
                    continue
                u = float(rng.uniform(hx + 0.05, length - hx - 0.05))
                x, y = self._wall_point(wall, u, hy + 0.005)
                yaw = _WALL_YAW[wall]
                if fam.placement == "mounted":
                    z = float(rng.uniform(*fam.mount))
                    if any(u + hx > a and u - hx < b for a, b in self.mounted[wall]):
                        continue
                    needs_floor = z < 1.0
                    depth = 0.8 if fam.coarse == "door" else hy + 0.1
                    fx, fy = self._wall_point(wall, u, 0.5 * depth)
                    box = self._aabb(fx, fy, yaw, hx, 0.5 * depth)
                    if needs_floor and not self._free(box):
                        continue
                    self.mounted[wall].append((u - hx, u + hx))
                    if needs_floor:
                        self.boxes.append(box)
                    self._build(fine, x, y, z, yaw, hx, hy, h, color)
                    return True
            else:
                x, y = rng.uniform(0.3, self.L - 0.3)
                yaw = float(rng.uniform(0, 2 * np.pi))
                if fam.coarse == "chair" and self._tables:
                    ti = self._tables[int(rng.integers(0, len(self._tables)))]
                    tx, ty, thx, thy = ti
                    ang = float(rng.uniform(0, 2 * np.pi))
                    reach = max(thx, thy) + hy + 0.1
                    x, y = tx + reach * np.cos(ang), ty + reach * np.sin(ang)
                    yaw = ang + 0.5 * np.pi  # local +y (the seat's front) faces the table
            box = self._aabb(x, y, yaw, hx, hy)
            if not self._free(box):
                continue
            self.boxes.append(box)
            if fam.coarse == "table":
                self._tables.append((x, y, hx, hy))
            self._build(fine, x, y, 0.0, yaw, hx, hy, h, color)
            return True
        return False

    def _build(self, fine: FineClass, x, y, z, yaw, hx, hy, h, color) -> None:
        fine.family.build(Obj(self.b, x, y, z, yaw, fine.index, self.next_instance, color), hx, hy, h)
        self.next_instance += 1

    def clutter(self) -> None:
        """A few unlabelled small things (label -1) on the floor, as in real scans."""
        for _ in range(int(self.rng.integers(0, 4))):
            x, y = self.rng.uniform(0.3, self.L - 0.3)
            r = self.rng.uniform(0.05, 0.2, size=3)
            box = self._aabb(x, y, 0.0, r[0], r[1])
            if self._free(box):
                self.boxes.append(box)
                self.b.box((x, y, r[2]), r, float(self.rng.uniform(0, np.pi)), label=-1, instance=-1,
                           color=self.rng.uniform(40, 220, size=3))


def build_room(rng: np.random.Generator) -> tuple[Primitives, np.ndarray, str]:
    """Lay out one furnished room. Returns (solids with fine labels, room size [Lx, Ly], room type)."""
    names = list(ROOM_TYPES)
    probs = np.array([ROOM_TYPES[n][0] for n in names])
    room_type = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    room = _Room(rng, room_type)
    room.structure()
    for _ in range(int(rng.integers(1, 3))):
        room.add(FINE[int(rng.choice(len(FINE), p=_structure_probs("door")))])
    for _ in range(int(rng.integers(0, 4))):
        room.add(FINE[int(rng.choice(len(FINE), p=_structure_probs("window")))])
    probs = _fine_probs(ROOM_TYPES[room_type][2])
    # Tables first so that chairs can gather around them.
    draws = rng.choice(len(FINE), size=int(rng.integers(*OBJECTS_PER_ROOM, endpoint=True)), p=probs)
    draws = sorted(draws.tolist(), key=lambda i: FINE[i].coarse != NAMES20.index("table"))
    for i in draws:
        room.add(FINE[i])
    room.clutter()
    return room.b.build(), room.L.copy(), room_type


def camera_positions(prims: Primitives, size: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` viewpoints at eye height in free floor space (not inside any solid's footprint)."""
    lo = prims.center[:, :2] - prims.bounding_radius()[:, None]
    hi = prims.center[:, :2] + prims.bounding_radius()[:, None]
    small = prims.instance >= 0  # furniture blocks floor space; walls, floor and clutter (id -1) do not
    cams = []
    for _ in range(200):
        xy = rng.uniform(0.5, size - 0.5)
        inside = small & np.all((xy >= lo - 0.1) & (xy <= hi + 0.1), axis=1)
        if not inside.any():
            cams.append([xy[0], xy[1], rng.uniform(1.2, 1.7)])
        if len(cams) == count:
            break
    if not cams:  # a crowded room: the centre at head height is above most furniture
        cams.append([0.5 * size[0], 0.5 * size[1], 2.2])
    return np.array(cams)


def scan_room(prims: Primitives, cameras: np.ndarray, rays_per_view: int, rng: np.random.Generator,
              noise: float = 0.003) -> dict[str, np.ndarray]:
    """Points visible from the cameras: coord [N, 3] f32, color [N, 3] u8, normal [N, 3] f32, fine label,
    instance. Rays go in random directions, mostly level or downward (a person sweeping a scanner)."""
    coords, colors, norms, labels, insts = [], [], [], [], []
    brightness = rng.uniform(0.8, 1.15) * rng.uniform(0.93, 1.07, size=3)  # the room's lighting
    for cam in cameras:
        az = rng.uniform(0, 2 * np.pi, size=rays_per_view)
        sin_el = rng.uniform(-1.0, 0.35, size=rays_per_view)
        cos_el = np.sqrt(1 - sin_el ** 2)
        dirs = np.stack([cos_el * np.cos(az), cos_el * np.sin(az), sin_el], axis=1)
        t, idx = cast(prims, cam, dirs, max_t=20.0)
        hit = np.isfinite(t)
        t, idx, dirs = t[hit], idx[hit], dirs[hit]
        pts = cam + dirs * t[:, None]
        n = normals(prims, pts, idx)
        n = np.where(((n * dirs).sum(1) > 0)[:, None], -n, n)  # face the camera
        shade = 0.7 + 0.3 * np.abs((n * dirs).sum(1))
        rgb = prims.color[idx] * brightness * shade[:, None] + rng.normal(0, 6, size=(len(t), 3))
        n = n + rng.normal(0, 0.03, size=n.shape)
        coords.append(pts + rng.normal(0, noise, size=pts.shape))
        colors.append(np.clip(np.rint(rgb), 0, 255))
        norms.append(n / np.linalg.norm(n, axis=1, keepdims=True))
        labels.append(prims.label[idx])
        insts.append(prims.instance[idx])
    return {"coord": np.concatenate(coords).astype(np.float32), "color": np.concatenate(colors).astype(np.uint8),
            "normal": np.concatenate(norms).astype(np.float32), "fine": np.concatenate(labels).astype(np.int64),
            "instance": np.concatenate(insts).astype(np.int64)}


def coarse_labels(fine: np.ndarray) -> np.ndarray:
    """20-class labels of fine labels (-1 stays -1)."""
    return np.where(fine >= 0, _COARSE_OF[np.maximum(fine, 0)], -1).astype(np.int64)
