"""Schedules as pure functions of the training progress (step / total_steps in [0, 1])."""

from __future__ import annotations

import math


def cosine(start: float, end: float, progress: float) -> float:
    """Cosine interpolation from `start` (progress 0) to `end` (progress 1)."""
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_warmup(start: float, end: float, progress: float, warmup: float) -> float:
    """Linear from `start` to `end` over the first `warmup` fraction, then constant at `end`."""
    if warmup <= 0 or progress >= warmup:
        return end
    return start + (end - start) * progress / warmup
