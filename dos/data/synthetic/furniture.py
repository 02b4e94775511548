"""Indoor object families (compositions of solids) and the 20 / 200 class catalogue.

Each of the 20 ScanNet classes has a few shape families (a chair is a dining chair, an office chair,
an armchair or a stool). Fine classes cross families with size and colour variants, for exactly 200
fine classes. Their sampling weights are Zipf-like, so ScanNet200's head / common / tail split
(66 / 68 / 66 classes by frequency) exists here too. The catalogue is fixed (its own seed): it does
not change with the dataset seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .primitives import SceneBuilder

NAMES20 = ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
           "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
           "otherfurniture"]
# Fine classes per coarse class; they add up to 200.
FINE_COUNTS = {"wall": 4, "floor": 3, "cabinet": 14, "bed": 6, "chair": 16, "sofa": 8, "table": 14, "door": 6,
               "window": 6, "bookshelf": 6, "picture": 8, "counter": 6, "desk": 8, "curtain": 6, "refrigerator": 4,
               "shower curtain": 3, "toilet": 3, "sink": 5, "bathtub": 3, "otherfurniture": 71}
TONES = ["white", "black", "gray", "beige", "brown", "red", "blue", "green", "yellow", "orange", "teal", "purple",
         "pink", "navy", "olive", "maroon", "silver", "cream"]
TONE_RGB = np.array([[235, 235, 230], [35, 35, 40], [128, 128, 128], [215, 200, 170], [120, 80, 50], [180, 40, 40],
                     [50, 80, 170], [60, 140, 70], [220, 200, 60], [230, 130, 40], [40, 150, 150], [120, 60, 150],
                     [230, 150, 180], [30, 40, 90], [110, 120, 50], [110, 30, 40], [190, 195, 200], [245, 235, 205]],
                    dtype=np.float64)


class Obj:
    """Places parts of one object given in its local frame (x along its front, -y toward the wall it backs onto)."""

    def __init__(self, b: SceneBuilder, x: float, y: float, z: float, yaw: float, label: int, instance: int,
                 color: np.ndarray):
        self.b, self.x, self.y, self.z, self.yaw = b, x, y, z, yaw
        self.label, self.instance, self.color = label, instance, color
        self.c, self.s = np.cos(yaw), np.sin(yaw)

    def _at(self, dx: float, dy: float, z: float) -> tuple[float, float, float]:
        return (self.x + self.c * dx - self.s * dy, self.y + self.s * dx + self.c * dy, self.z + z)

    def box(self, dx, dy, z, half, color=None) -> None:
        self.b.box(self._at(dx, dy, z), half, self.yaw, label=self.label, instance=self.instance,
                   color=self.color if color is None else color)

    def cyl(self, dx, dy, z, r, hh, color=None) -> None:
        self.b.cylinder(self._at(dx, dy, z), r, hh, label=self.label, instance=self.instance,
                        color=self.color if color is None else color)

    def ell(self, dx, dy, z, radii, color=None) -> None:
        self.b.ellipsoid(self._at(dx, dy, z), radii, self.yaw, label=self.label, instance=self.instance,
                         color=self.color if color is None else color)


def _shade(color: np.ndarray, f: float) -> np.ndarray:
    return np.clip(color * f, 0, 255)


# -- builders: (obj, hx, hy, h) with the footprint [-hx, hx] x [-hy, hy] and height h ---------------------------
def _legs(o: Obj, hx: float, hy: float, h: float, r: float = 0.02, color=None) -> None:
    for sx in (-1, 1):
        for sy in (-1, 1):
            o.cyl(sx * (hx - 2 * r), sy * (hy - 2 * r), 0.5 * h, r, 0.5 * h, color)


def cabinet(o, hx, hy, h):
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))
    o.box(0, hy + 0.01, 0.6 * h, (0.05, 0.01, 0.01), _shade(o.color, 0.5))  # handle


def chest(o, hx, hy, h):
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))
    for z in np.linspace(0.2, 0.85, 3) * h:
        o.box(0, hy + 0.01, z, (0.6 * hx, 0.01, 0.015), _shade(o.color, 0.6))


def bed(o, hx, hy, h):
    o.box(0, 0, 0.15, (hx, hy, 0.15), _shade(o.color, 0.7))  # frame
    o.box(0, 0.05, 0.38, (hx - 0.03, hy - 0.1, 0.1), np.array([230, 230, 225.0]))  # mattress
    o.box(0, -hy + 0.03, 0.5 * h, (hx, 0.03, 0.5 * h), _shade(o.color, 0.7))  # headboard
    for sx in ((-0.5, 0.5) if hx > 0.6 else (0.0,)):
        o.ell(sx * hx, -hy + 0.3, 0.53, (0.25, 0.15, 0.07), np.array([245, 245, 240.0]))


def dining_chair(o, hx, hy, h):
    _legs(o, hx, hy, 0.45, 0.02, _shade(o.color, 0.8))
    o.box(0, 0, 0.47, (hx, hy, 0.025))
    o.box(0, -hy + 0.02, 0.47 + 0.5 * (h - 0.47), (hx, 0.02, 0.5 * (h - 0.47)))


def office_chair(o, hx, hy, h):
    o.cyl(0, 0, 0.04, 0.3, 0.04, np.array([30, 30, 30.0]))
    o.cyl(0, 0, 0.25, 0.03, 0.2, np.array([150, 150, 150.0]))
    o.box(0, 0, 0.5, (hx, hy, 0.05))
    o.box(0, -hy + 0.03, 0.85, (0.8 * hx, 0.03, 0.3))


def armchair(o, hx, hy, h):
    o.box(0, 0, 0.2, (hx, hy, 0.2))
    o.box(0, 0.05, 0.45, (hx - 0.12, hy - 0.05, 0.05), _shade(o.color, 1.1))
    for sx in (-1, 1):
        o.box(sx * (hx - 0.06), 0, 0.5, (0.06, hy, 0.1))
    o.box(0, -hy + 0.08, 0.5 * h + 0.2, (hx, 0.08, 0.5 * h - 0.2))


def stool(o, hx, hy, h):
    o.cyl(0, 0, h - 0.03, hx, 0.03)
    _legs(o, 0.7 * hx, 0.7 * hx, h - 0.05, 0.015, _shade(o.color, 0.7))


def sofa(o, hx, hy, h):
    o.box(0, 0, 0.22, (hx, hy, 0.22))
    o.box(0, 0.07, 0.47, (hx - 0.15, hy - 0.1, 0.05), _shade(o.color, 1.1))
    for sx in (-1, 1):
        o.box(sx * (hx - 0.08), 0, 0.32, (0.08, hy, 0.32))
    o.box(0, -hy + 0.1, 0.5 * h, (hx, 0.1, 0.5 * h))


def l_sofa(o, hx, hy, h):
    sofa(o, hx, hy, h)
    o.box(hx - 0.4, hy + 0.5, 0.24, (0.4, 0.5, 0.24))


def rect_table(o, hx, hy, h):
    _legs(o, hx, hy, h - 0.03, 0.025, _shade(o.color, 0.8))
    o.box(0, 0, h - 0.015, (hx, hy, 0.015))


def round_table(o, hx, hy, h):
    o.cyl(0, 0, h - 0.015, hx, 0.015)
    o.cyl(0, 0, 0.5 * h, 0.05, 0.5 * h, _shade(o.color, 0.7))
    o.cyl(0, 0, 0.02, 0.3, 0.02, _shade(o.color, 0.7))


def door(o, hx, hy, h):
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))
    o.box(0.75 * hx, hy + 0.03, 1.0, (0.06, 0.03, 0.015), np.array([190, 190, 190.0]))


def panel(o, hx, hy, h):
    """A flat thing on a wall (window, picture, whiteboard, radiator): z is its bottom edge."""
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))


def bookshelf(o, hx, hy, h):
    for sx in (-1, 1):
        o.box(sx * (hx - 0.01), 0, 0.5 * h, (0.01, hy, 0.5 * h))
    o.box(0, -hy + 0.01, 0.5 * h, (hx, 0.01, 0.5 * h))
    levels = np.linspace(0.02, h - 0.02, max(3, int(h / 0.38)))
    for i, z in enumerate(levels):
        o.box(0, 0, z, (hx, hy, 0.012))
        if i < len(levels) - 1:  # a row of books, shallower than the shelf
            fill = 0.4 + 0.5 * ((i * 37) % 10) / 10
            o.box(-hx * (1 - fill), -0.15 * hy, z + 0.13, (hx * fill - 0.02, 0.8 * hy, 0.11), _shade(o.color, 0.6))


def counter(o, hx, hy, h):
    o.box(0, -0.02, 0.5 * (h - 0.04), (hx, hy - 0.02, 0.5 * (h - 0.04)), _shade(o.color, 0.8))
    o.box(0, 0, h - 0.02, (hx, hy, 0.02))


def desk(o, hx, hy, h):
    o.box(0, 0, h - 0.02, (hx, hy, 0.02))
    for sx in (-1, 1):
        o.box(sx * (hx - 0.02), 0, 0.5 * (h - 0.04), (0.02, hy - 0.02, 0.5 * (h - 0.04)))


def drawer_desk(o, hx, hy, h):
    o.box(0, 0, h - 0.02, (hx, hy, 0.02))
    o.box(-hx + 0.2, 0, 0.5 * (h - 0.04), (0.2, hy - 0.02, 0.5 * (h - 0.04)))
    o.box(hx - 0.02, 0, 0.5 * (h - 0.04), (0.02, hy - 0.02, 0.5 * (h - 0.04)))


def curtain(o, hx, hy, h):
    """Folds: a row of thin vertical cylinders hanging from the top."""
    for dx in np.arange(-hx + 0.05, hx, 0.09):
        o.cyl(dx, 0, 0.5 * h, 0.05, 0.5 * h)


def fridge(o, hx, hy, h):
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))
    o.box(hx - 0.06, hy + 0.015, 0.6 * h, (0.015, 0.015, 0.15), np.array([200, 200, 200.0]))


def toilet(o, hx, hy, h):
    o.box(0, -hy + 0.1, 0.6, (0.9 * hx, 0.1, 0.2))  # tank
    o.cyl(0, 0.05, 0.2, 0.13, 0.2)
    o.ell(0, 0.08, 0.4, (hx, 0.6 * hy, 0.08))


def sink(o, hx, hy, h):
    o.box(0, 0, 0.5 * (h - 0.15), (0.8 * hx, 0.8 * hy, 0.5 * (h - 0.15)), _shade(o.color, 0.7))
    o.ell(0, 0, h - 0.1, (hx, hy, 0.1), np.array([240, 240, 240.0]))


def pedestal_sink(o, hx, hy, h):
    o.cyl(0, 0, 0.5 * (h - 0.15), 0.08, 0.5 * (h - 0.15))
    o.ell(0, 0, h - 0.1, (hx, hy, 0.12))


def bathtub(o, hx, hy, h):
    o.box(0, 0, 0.04, (hx, hy, 0.04))
    for sx in (-1, 1):
        o.box(sx * (hx - 0.04), 0, 0.5 * h, (0.04, hy, 0.5 * h))
    for sy in (-1, 1):
        o.box(0, sy * (hy - 0.04), 0.5 * h, (hx, 0.04, 0.5 * h))


def lamp(o, hx, hy, h):
    o.cyl(0, 0, 0.02, 0.15, 0.02, _shade(o.color, 0.5))
    o.cyl(0, 0, 0.5 * h, 0.015, 0.5 * h, _shade(o.color, 0.5))
    o.cyl(0, 0, h - 0.12, hx, 0.12)


def column(o, hx, hy, h):
    o.cyl(0, 0, 0.5 * h, hx, 0.5 * h)


def block(o, hx, hy, h):
    o.box(0, 0, 0.5 * h, (hx, hy, 0.5 * h))


def blob(o, hx, hy, h):
    o.ell(0, 0, 0.5 * h, (hx, hy, 0.5 * h))


def plant(o, hx, hy, h):
    o.cyl(0, 0, 0.15, 0.6 * hx, 0.15, np.array([150, 80, 50.0]))
    o.ell(0, 0, 0.3 + 0.5 * (h - 0.3), (hx, hy, 0.5 * (h - 0.3)), np.array([50, 120, 50.0]))


def screen(o, hx, hy, h):
    o.box(0, 0, 0.5 * (h - 0.5), (0.8 * hx, hy, 0.5 * (h - 0.5)), _shade(o.color, 0.6))  # stand / cabinet
    o.box(0, 0, h - 0.25, (hx, 0.03, 0.25), np.array([20, 20, 25.0]))


@dataclass(frozen=True)
class Family:
    coarse: str
    base: tuple[float, float, float]  # hx, hy, h
    placement: str  # "wall" (backs onto a wall), "free", "mounted" (on a wall, above the floor), "structure"
    build: Callable | None
    mount: tuple[float, float] = (0.0, 0.0)  # bottom-edge height range for mounted things


# Families of each coarse class; fine classes cycle through them.
FAMILIES: dict[str, list[tuple[str, Family]]] = {
    "wall": [("plain", Family("wall", (0, 0, 0), "structure", None)),
             ("tiled", Family("wall", (0, 0, 0), "structure", None))],
    "floor": [("wood", Family("floor", (0, 0, 0), "structure", None)),
              ("carpet", Family("floor", (0, 0, 0), "structure", None))],
    "cabinet": [("low", Family("cabinet", (0.45, 0.25, 0.9), "wall", cabinet)),
                ("tall", Family("cabinet", (0.45, 0.3, 2.0), "wall", cabinet)),
                ("chest", Family("cabinet", (0.4, 0.25, 1.1), "wall", chest)),
                ("hanging", Family("cabinet", (0.5, 0.18, 0.7), "mounted", cabinet, (1.4, 1.6)))],
    "bed": [("single", Family("bed", (0.5, 1.0, 0.9), "wall", bed)),
            ("double", Family("bed", (0.8, 1.02, 1.0), "wall", bed))],
    "chair": [("dining", Family("chair", (0.22, 0.22, 0.9), "free", dining_chair)),
              ("office", Family("chair", (0.3, 0.3, 1.15), "free", office_chair)),
              ("armchair", Family("chair", (0.42, 0.4, 0.95), "free", armchair)),
              ("stool", Family("chair", (0.18, 0.18, 0.65), "free", stool))],
    "sofa": [("straight", Family("sofa", (1.0, 0.45, 0.85), "wall", sofa)),
             ("corner", Family("sofa", (1.2, 0.45, 0.85), "wall", l_sofa))],
    "table": [("rectangular", Family("table", (0.7, 0.45, 0.75), "free", rect_table)),
              ("round", Family("table", (0.5, 0.5, 0.75), "free", round_table)),
              ("coffee", Family("table", (0.55, 0.3, 0.45), "free", rect_table)),
              ("side", Family("table", (0.25, 0.25, 0.55), "free", rect_table))],
    "door": [("single", Family("door", (0.45, 0.025, 2.05), "mounted", door)),
             ("double", Family("door", (0.8, 0.025, 2.1), "mounted", door))],
    "window": [("wide", Family("window", (0.8, 0.03, 1.2), "mounted", panel, (0.8, 1.0))),
               ("tall", Family("window", (0.45, 0.03, 1.6), "mounted", panel, (0.5, 0.8)))],
    "bookshelf": [("tall", Family("bookshelf", (0.45, 0.17, 1.9), "wall", bookshelf)),
                  ("low", Family("bookshelf", (0.5, 0.17, 0.9), "wall", bookshelf))],
    "picture": [("landscape", Family("picture", (0.4, 0.015, 0.5), "mounted", panel, (1.3, 1.6))),
                ("portrait", Family("picture", (0.25, 0.015, 0.7), "mounted", panel, (1.2, 1.5)))],
    "counter": [("kitchen", Family("counter", (1.0, 0.32, 0.92), "wall", counter)),
                ("island", Family("counter", (0.8, 0.45, 0.92), "free", counter))],
    "desk": [("plain", Family("desk", (0.7, 0.35, 0.74), "wall", desk)),
             ("drawers", Family("desk", (0.75, 0.38, 0.74), "wall", drawer_desk))],
    "curtain": [("long", Family("curtain", (0.6, 0.05, 2.2), "mounted", curtain, (0.05, 0.1))),
                ("short", Family("curtain", (0.5, 0.05, 1.3), "mounted", curtain, (0.8, 0.9)))],
    "refrigerator": [("single", Family("refrigerator", (0.33, 0.33, 1.75), "wall", fridge)),
                     ("double", Family("refrigerator", (0.45, 0.35, 1.85), "wall", fridge))],
    "shower curtain": [("plain", Family("shower curtain", (0.45, 0.05, 1.8), "mounted", curtain, (0.2, 0.3)))],
    "toilet": [("standard", Family("toilet", (0.2, 0.33, 0.8), "wall", toilet))],
    "sink": [("cabinet", Family("sink", (0.3, 0.25, 0.88), "wall", sink)),
             ("pedestal", Family("sink", (0.28, 0.22, 0.85), "wall", pedestal_sink))],
    "bathtub": [("standard", Family("bathtub", (0.8, 0.38, 0.55), "wall", bathtub))],
    "otherfurniture": [("lamp", Family("otherfurniture", (0.2, 0.2, 1.5), "free", lamp)),
                       ("trash can", Family("otherfurniture", (0.15, 0.15, 0.4), "free", column)),
                       ("box", Family("otherfurniture", (0.25, 0.2, 0.3), "free", block)),
                       ("plant", Family("otherfurniture", (0.3, 0.3, 1.0), "free", plant)),
                       ("ottoman", Family("otherfurniture", (0.3, 0.3, 0.4), "free", block)),
                       ("beanbag", Family("otherfurniture", (0.4, 0.4, 0.6), "free", blob)),
                       ("suitcase", Family("otherfurniture", (0.25, 0.12, 0.6), "free", block)),
                       ("tv", Family("otherfurniture", (0.6, 0.2, 1.1), "wall", screen)),
                       ("radiator", Family("otherfurniture", (0.5, 0.05, 0.6), "mounted", panel, (0.1, 0.15))),
                       ("whiteboard", Family("otherfurniture", (0.9, 0.02, 1.0), "mounted", panel, (0.9, 1.0))),
                       ("basket", Family("otherfurniture", (0.22, 0.22, 0.35), "free", column))],
}


@dataclass(frozen=True)
class FineClass:
    index: int
    name: str
    coarse: int  # index into NAMES20
    family: Family
    scale: tuple[float, float, float]
    color: tuple[float, float, float]
    weight: float  # relative sampling weight among the fine classes of its coarse class


def _catalogue() -> list[FineClass]:
    rng = np.random.default_rng(20240520)  # fixed: the catalogue is part of the benchmark's definition
    fine: list[FineClass] = []
    for coarse, count in FINE_COUNTS.items():
        families = FAMILIES[coarse]
        for j in range(count):
            fam_name, family = families[j % len(families)]
            tone = (j // len(families) + 3 * NAMES20.index(coarse)) % len(TONES)
            name = f"{coarse} {fam_name} {TONES[tone]}" if count > 1 else coarse
            # Variants differ in size (per dimension), colour and frequency (Zipf within the coarse class).
            scale = tuple(float(v) for v in rng.uniform(0.8, 1.25, size=3)) if j >= len(families) else (1.0, 1.0, 1.0)
            color = tuple(float(v) for v in np.clip(TONE_RGB[tone] + rng.normal(0, 12, size=3), 0, 255))
            fine.append(FineClass(len(fine), name, NAMES20.index(coarse), family, scale, color, 1.0 / (j + 1) ** 1.1))
    assert len(fine) == 200 and len({f.name for f in fine}) == 200
    return fine


FINE: list[FineClass] = _catalogue()
NAMES200 = [f.name for f in FINE]
