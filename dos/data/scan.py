"""One point cloud as every reader returns it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scan:
    """A scan (LiDAR sweep) or a scene (indoor room).

    coord:   float32 [N, 3] x, y, z in metres.
    feat:    float32 [N, C] per-point input features; which channels depends on the reader (LiDAR:
             intensity / remission / strength; indoor: rgb in [0, 1] then the normal where there is one).
    segment: int64 [N] training label ids, -1 = ignore; None for an unlabelled split.
    extra:   anything else the files carry, e.g. "instance", "raw_segment", "ring", "feat_names".
    """

    name: str
    coord: np.ndarray
    feat: np.ndarray
    segment: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.coord.shape[0])
