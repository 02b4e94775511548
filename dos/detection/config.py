"""CenterPoint's hyperparameters, all in one frozen dataclass, checked when it is built.

Defaults are CenterPoint's nuScenes settings where they carry over to a point-set backbone: the 6 task groups,
min Gaussian overlap 0.1 and min radius 2 cells, heatmap bias -2.19, focal loss + 0.25 x L1 with code weights
(1 x 8, 0.2 velocity), score threshold 0.1, circle NMS and 500 boxes per sample. The BEV grid is
[-51.2, 51.2] m at 0.8 m cells (128 x 128; CenterPoint's 0.1 m voxels x out_size_factor 8).

NMS radii are true centre distances in metres. CenterPoint's circle NMS compares the *squared* distance with
its `min_radius` ([4, 12, 10, 1, 0.85, 0.175] per task), so the defaults here are the square roots of those,
given per class (each class takes its task group's value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dos.config.ranges import check_ranges
from dos.data.boxes import DETECTION_CLASSES
from dos.detection.bev import POOLS, BevGrid

# nuScenes' task groups (CenterPoint): classes that share a heatmap head.
NUSCENES_TASKS: tuple[tuple[str, ...], ...] = (
    ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",), ("motorcycle", "bicycle"),
    ("pedestrian", "traffic_cone"))

_CENTERPOINT_SQUARED_RADIUS = {"car": 4.0, "truck": 12.0, "construction_vehicle": 12.0, "bus": 10.0,
                               "trailer": 10.0, "barrier": 1.0, "motorcycle": 0.85, "bicycle": 0.85,
                               "pedestrian": 0.175, "traffic_cone": 0.175}
# one radius per class, in DETECTION_CLASSES order
NUSCENES_NMS_RADIUS: tuple[float, ...] = tuple(math.sqrt(_CENTERPOINT_SQUARED_RADIUS[name])
                                               for name in DETECTION_CLASSES)

# regression channels, in the order of the regression target / code weights
REGRESSION_HEADS: tuple[tuple[str, int], ...] = (("offset", 2), ("height", 1), ("size", 3), ("rotation", 2),
                                                 ("velocity", 2))
REGRESSION_CHANNELS = sum(dim for _, dim in REGRESSION_HEADS)


@dataclass(frozen=True)
class CenterPointConfig:
    in_channels: int = 0                               # backbone feature width; 0 = set by `dos detect` from it
    # BEV grid
    point_cloud_range: tuple[float, ...] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
    cell_size: float = 0.8
    pool: str = "max"                                  # max | mean: how the points of a BEV cell are pooled
    # neck: stage 0 at full resolution, stage 1 at stride 2; each upsampled to neck_up_channels, concatenated
    neck_channels: tuple[int, int] = (64, 128)
    neck_blocks: tuple[int, int] = (2, 2)              # Conv-BN-ReLU blocks after each stage's first conv
    neck_up_channels: int = 64
    # heads
    head_channels: int = 64                            # the shared conv
    head_conv: int = 64                                # hidden width of each per-task head
    heatmap_bias: float = -2.19                        # = -log((1 - 0.1) / 0.1): initial heat 0.1
    tasks: tuple[tuple[str, ...], ...] = NUSCENES_TASKS
    # targets
    min_overlap: float = 0.1
    min_radius: int = 2                                # cells
    max_objects: int = 500                             # per sample and task group
    # loss
    heatmap_weight: float = 1.0
    regression_weight: float = 0.25
    code_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)  # REGRESSION_HEADS order
    # decoding
    top_k: int = 500                                   # peaks per sample and task group before the threshold
    score_threshold: float = 0.1
    nms_radius: tuple[float, ...] = NUSCENES_NMS_RADIUS  # metres, one per DETECTION_CLASSES entry
    max_boxes: int = 500                               # per sample, after NMS (nuScenes' limit)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("cell_size", "neck_channels", "neck_up_channels",
                                     "head_channels", "head_conv", "min_overlap", "max_objects", "top_k",
                                     "max_boxes"),
                     nonnegative=("in_channels", "neck_blocks", "min_radius", "heatmap_weight", "regression_weight",
                                  "code_weights", "nms_radius"),
                     probability=("min_overlap", "score_threshold"))
        BevGrid(tuple(self.point_cloud_range), self.cell_size)  # type: ignore[arg-type]  # checks range, cell
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        for name in ("neck_channels", "neck_blocks"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"{name} needs 2 values (full resolution, stride 2), got {getattr(self, name)!r}")
        if len(self.code_weights) != REGRESSION_CHANNELS:
            raise ValueError(f"code_weights needs {REGRESSION_CHANNELS} values "
                             f"({', '.join(f'{n} {d}' for n, d in REGRESSION_HEADS)}), got {len(self.code_weights)}")
        if len(self.nms_radius) != len(DETECTION_CLASSES):
            raise ValueError(f"nms_radius needs one value per class ({', '.join(DETECTION_CLASSES)}), "
                             f"got {len(self.nms_radius)}")
        if not self.tasks or any(not group for group in self.tasks):
            raise ValueError(f"tasks must be non-empty groups of class names, got {self.tasks!r}")
        seen: set[str] = set()
        for group in self.tasks:
            for name in group:
                if name not in DETECTION_CLASSES:
                    raise ValueError(f"unknown class {name!r} in tasks; the classes are {DETECTION_CLASSES}")
                if name in seen:
                    raise ValueError(f"class {name!r} appears in more than one task group")
                seen.add(name)

    @property
    def grid(self) -> BevGrid:
        return BevGrid(tuple(self.point_cloud_range), self.cell_size)  # type: ignore[arg-type]

    @property
    def task_labels(self) -> tuple[tuple[int, ...], ...]:
        """Each task group's classes as indices into DETECTION_CLASSES."""
        return tuple(tuple(DETECTION_CLASSES.index(name) for name in group) for group in self.tasks)
