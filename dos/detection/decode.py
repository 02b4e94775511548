"""From CenterPoint's head outputs to boxes: heatmap peaks (a cell that is the maximum of its 3 x 3
neighbourhood), the top K of them per sample and task group, their regression read at the peak cell, a score
threshold, per-class circle NMS, and at most `max_boxes` per sample by score."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dos.data.boxes import DETECTION_CLASSES, Boxes
from dos.detection.bev import BevGrid
from dos.detection.losses import gather_regression
from dos.detection.results_format import default_attribute


def heatmap_peaks(heat: Tensor) -> Tensor:
    """[B, C, H, W] heat with every cell that is not the maximum of its 3 x 3 neighbourhood set to 0."""
    return heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)


def circle_nms(centers: np.ndarray, scores: np.ndarray, radius: float) -> np.ndarray:
    """Greedy centre-distance NMS: visiting boxes by decreasing score (ties: lower index first), keep a box and
    drop every later box whose (x, y) centre lies within `radius` metres of it. Returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    xy = centers[order, :2]
    close = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) <= radius * radius
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(order[i])
            suppressed |= close[i]
    return np.asarray(keep, dtype=np.int64)


def _decode_task(output: dict[str, Tensor], grid: BevGrid, labels: tuple[int, ...],
                 top_k: int) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes [B, K, 9]: x, y, z, w, l, h, yaw, vx, vy; scores [B, K]; labels [B, K] into DETECTION_CLASSES) of the
    top-K peaks of one task group."""
    heat = heatmap_peaks(torch.sigmoid(output["heatmap"].float()))
    batch, classes, height, width = heat.shape
    k = min(top_k, classes * height * width)
    scores, flat = heat.flatten(1).topk(k, dim=1)
    cls, cell = flat // (height * width), flat % (height * width)
    reg = gather_regression({name: value.float() for name, value in output.items()}, cell)   # [B, K, 10]
    col_row = torch.stack([cell % width, cell // width], dim=-1).float() + reg[..., 0:2]
    xy = grid.metric_position(col_row)
    yaw = torch.atan2(reg[..., 6], reg[..., 7])
    boxes = torch.cat([xy, reg[..., 2:3], reg[..., 3:6].exp(), yaw[..., None], reg[..., 8:10]], dim=-1)
    return boxes, scores, torch.as_tensor(labels, device=cls.device)[cls]


@torch.no_grad()
def decode(outputs: list[dict[str, Tensor]], grid: BevGrid, task_labels: tuple[tuple[int, ...], ...],
           top_k: int = 500, score_threshold: float = 0.1,
           nms_radius: tuple[float, ...] | None = None, max_boxes: int = 500) -> list[tuple[Boxes, np.ndarray]]:
    """Head outputs (one dict per task group) -> per sample (Boxes, scores [M]), sorted by decreasing score.
    nms_radius: metres per DETECTION_CLASSES entry (None or 0 = no NMS for that class). Attributes are filled
    by `default_attribute`."""
    decoded = [_decode_task(output, grid, labels, top_k) for output, labels in zip(outputs, task_labels)]
    boxes = torch.cat([d[0] for d in decoded], dim=1).cpu().double().numpy()
    scores = torch.cat([d[1] for d in decoded], dim=1).cpu().double().numpy()
    labels = torch.cat([d[2] for d in decoded], dim=1).cpu().numpy()
    results = []
    for b in range(len(boxes)):
        keep = np.flatnonzero(scores[b] >= score_threshold)
        kept = []
        for label in np.unique(labels[b, keep]):
            members = keep[labels[b, keep] == label]
            radius = nms_radius[label] if nms_radius is not None else 0.0
            kept.append(members[circle_nms(boxes[b, members], scores[b, members], radius)] if radius > 0
                        else members)
        index = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        index = index[np.argsort(-scores[b, index], kind="stable")][:max_boxes]
        box = boxes[b, index]
        names = [DETECTION_CLASSES[i] for i in labels[b, index]]
        results.append((Boxes(box[:, 0:3], box[:, 3:6], box[:, 6], labels[b, index], box[:, 7:9],
                              attribute=[default_attribute(n, v) for n, v in zip(names, box[:, 7:9])]),
                        scores[b, index]))
    return results
