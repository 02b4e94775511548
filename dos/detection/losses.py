"""CenterPoint's loss: penalty-reduced focal loss on the heatmaps plus masked L1 on the regression, per task group.

focal (CenterNet, alpha 2, beta 4), p = sigmoid(logit) clamped to [1e-4, 1 - 1e-4], y = target heat:
    y == 1:  -(1 - p)^alpha log(p)
    y <  1:  -(1 - y)^beta p^alpha log(1 - p)
summed over the map and divided by the number of boxes (at least 1).

regression: |pred - target| at each box's centre cell, per channel averaged over the boxes whose target is known
on that channel (`TaskTargets.weight`: the velocity of a box with NaN velocity is not), then weighted by the code
weights and summed. CenterPoint divides every channel by the number of boxes; when all velocities are known the
two agree.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dos.detection.config import REGRESSION_HEADS
from dos.detection.targets import TaskTargets

_EPS = 1e-4


def focal_loss(logits: Tensor, target: Tensor, num_objects: Tensor | int, alpha: float = 2.0,
               beta: float = 4.0) -> Tensor:
    """Penalty-reduced focal loss of heatmap logits [B, C, H, W] against Gaussian targets of the same shape."""
    p = torch.sigmoid(logits.float()).clamp(_EPS, 1 - _EPS)
    positive = target.eq(1).float()
    pos = torch.log(p) * (1 - p).pow(alpha) * positive
    neg = torch.log(1 - p) * p.pow(alpha) * (1 - target).pow(beta) * (1 - positive)
    num = torch.as_tensor(num_objects, dtype=p.dtype, device=p.device).clamp(min=1)
    return -(pos.sum() + neg.sum()) / num


def gather_regression(output: dict[str, Tensor], index: Tensor) -> Tensor:
    """The regression maps of one task group, concatenated in REGRESSION_HEADS order and read at the flat cell
    indices [B, K] -> [B, K, 10]."""
    maps = torch.cat([output[name] for name, _ in REGRESSION_HEADS], dim=1)   # [B, 10, H, W]
    flat = maps.flatten(2).transpose(1, 2)                                    # [B, H*W, 10]
    return flat.gather(1, index[..., None].expand(-1, -1, flat.shape[-1]))


def regression_loss(pred: Tensor, target: Tensor, weight: Tensor, code_weights: Tensor) -> Tensor:
    """Masked L1: pred, target, weight [B, K, D]; code_weights [D]."""
    per_channel = ((pred.float() - target).abs() * weight).sum(dim=(0, 1))
    known = weight.sum(dim=(0, 1)).clamp(min=1)
    return (per_channel / known * code_weights).sum()


def centerpoint_loss(outputs: list[dict[str, Tensor]], targets: list[TaskTargets], code_weights: tuple[float, ...],
                     heatmap_weight: float = 1.0, regression_weight: float = 0.25) -> dict[str, Tensor]:
    """{"loss": total, "heatmap": sum over task groups, "regression": sum over task groups (unweighted)}."""
    heat, reg = outputs[0]["heatmap"].new_zeros(()).float(), outputs[0]["heatmap"].new_zeros(()).float()
    for output, target in zip(outputs, targets, strict=True):
        heat = heat + focal_loss(output["heatmap"], target.heatmap, target.mask.sum())
        weights = torch.as_tensor(code_weights, dtype=torch.float32, device=target.weight.device)
        reg = reg + regression_loss(gather_regression(output, target.index), target.regression, target.weight,
                                    weights)
    return {"loss": heatmap_weight * heat + regression_weight * reg, "heatmap": heat.detach(),
            "regression": reg.detach()}
