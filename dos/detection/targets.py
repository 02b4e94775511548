"""Training targets of CenterPoint from ground-truth boxes: per task group a class heatmap of Gaussians at the box
centres, and at each box's centre cell its regression target (CenterNet's recipe, as CenterPoint uses it).

Regression target per box, in REGRESSION_HEADS order (10 channels): the sub-cell offset of the centre (x, y, in
cells, in [0, 1)), the centre height z (m), log width, log length, log height (m), sin yaw, cos yaw, and the
velocity (vx, vy) in m/s. `weight` is 1 where a target is known: 0 for padding slots, and 0 on the velocity
channels of a box whose velocity is NaN (unknown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dos.data.boxes import Boxes
from dos.detection.bev import BevGrid
from dos.detection.config import REGRESSION_CHANNELS

_MIN_SIZE = 1e-3  # metres: keeps log(size) finite for a degenerate box


@dataclass
class TaskTargets:
    """One task group's targets over a batch of B samples, K = max_objects slots each."""

    heatmap: Tensor       # [B, classes, H, W] float, 1 at each box's centre cell
    index: Tensor         # [B, K] int64, flat centre cell row * W + col (0 in unused slots)
    mask: Tensor          # [B, K] bool, slot holds a box
    regression: Tensor    # [B, K, 10] float, see the module docstring (0 where unknown)
    weight: Tensor        # [B, K, 10] float, 1 where the regression target is known


def gaussian_radius(length: float, width: float, min_overlap: float = 0.1) -> float:
    """CenterNet's radius (in the units of length and width, here cells) such that a box whose two corners are
    displaced within it still overlaps the true box by at least `min_overlap` IoU: the smallest root of its
    three cases (both corners inside, both outside, one of each).

    Written as CenterNet's code (and CenterPoint after it) computes it: (b + sqrt(b^2 - 4ac)) / 2 in every case,
    where the quadratic formula would divide the last two by 2a; CenterPoint was tuned with these radii."""
    total, area = length + width, length * width
    b1, c1 = total, area * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * total, (1 - min_overlap) * area
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * total, (min_overlap - 1) * area
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_kernel(radius: int) -> Tensor:
    """[2r + 1, 2r + 1] unnormalised Gaussian, sigma = diameter / 6, peak 1; values below eps * peak set to 0."""
    sigma = (2 * radius + 1) / 6
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(steps[:, None] ** 2 + steps[None, :] ** 2) / (2 * sigma * sigma))
    kernel[kernel < torch.finfo(torch.float32).eps * kernel.max()] = 0
    return kernel


def draw_gaussian(heatmap: Tensor, col: int, row: int, radius: int) -> None:
    """In place: heatmap[H, W] = max(heatmap, Gaussian of `radius` centred at (row, col)), clipped at the edges."""
    height, width = heatmap.shape
    kernel = gaussian_kernel(radius).to(heatmap)
    left, right = min(col, radius), min(width - col, radius + 1)
    top, bottom = min(row, radius), min(height - row, radius + 1)
    patch = heatmap[row - top:row + bottom, col - left:col + right]
    torch.maximum(patch, kernel[radius - top:radius + bottom, radius - left:radius + right], out=patch)


def regression_target(boxes: Boxes, grid: BevGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cells [M, 2] int (col, row), target [M, 10], known [M, 10] bool) of every box."""
    position = (boxes.center[:, :2] - np.asarray(grid.point_cloud_range[:2])) / grid.cell_size
    cells = np.floor(position).astype(np.int64)
    velocity = boxes.velocity
    target = np.concatenate([position - cells, boxes.center[:, 2:3], np.log(np.maximum(boxes.size, _MIN_SIZE)),
                             np.sin(boxes.yaw)[:, None], np.cos(boxes.yaw)[:, None],
                             np.nan_to_num(velocity, nan=0.0)], axis=1)
    known = np.ones_like(target, dtype=bool)
    known[:, -2:] = ~np.isnan(velocity)
    return cells, target, known


def build_targets(boxes: list[Boxes], grid: BevGrid, task_labels: tuple[tuple[int, ...], ...],
                  max_objects: int = 500, min_overlap: float = 0.1, min_radius: int = 2,
                  device: torch.device | str = "cpu") -> list[TaskTargets]:
    """One TaskTargets per task group. A box is dropped when its centre lies outside the grid's x-y range or its
    class is in no group; beyond `max_objects` boxes of a group in one sample, the rest are dropped (in input
    order)."""
    height, width = grid.shape
    batch = len(boxes)
    out = [TaskTargets(torch.zeros(batch, len(labels), height, width),
                       torch.zeros(batch, max_objects, dtype=torch.long),
                       torch.zeros(batch, max_objects, dtype=torch.bool),
                       torch.zeros(batch, max_objects, REGRESSION_CHANNELS),
                       torch.zeros(batch, max_objects, REGRESSION_CHANNELS)) for labels in task_labels]
    for b, sample in enumerate(boxes):
        cells, target, known = regression_target(sample, grid)
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < width) & (cells[:, 1] >= 0) & (cells[:, 1] < height)
        for task, labels in zip(out, task_labels):
            slot = 0
            for i in np.flatnonzero(inside & np.isin(sample.label, labels)):
                if slot == max_objects:
                    break
                col, row = int(cells[i, 0]), int(cells[i, 1])
                width_cells, length_cells = sample.size[i, :2] / grid.cell_size
                radius = max(min_radius, int(gaussian_radius(length_cells, width_cells, min_overlap)))
                draw_gaussian(task.heatmap[b, labels.index(int(sample.label[i]))], col, row, radius)
                task.index[b, slot] = row * width + col
                task.mask[b, slot] = True
                task.regression[b, slot] = torch.from_numpy(target[i]).float()
                task.weight[b, slot] = torch.from_numpy(known[i]).float()
                slot += 1
    if str(device) != "cpu":
        out = [TaskTargets(*(t.to(device) for t in (task.heatmap, task.index, task.mask, task.regression,
                                                    task.weight))) for task in out]
    return out
