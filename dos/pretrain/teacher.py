"""The EMA teacher: a frozen copy of the student's encoder, head and prototypes, updated as
teacher <- m * teacher + (1 - m) * student, with the momentum m on a cosine schedule (0.994 -> 1)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dos.pretrain.schedules import cosine, linear_warmup


def make_teacher(student: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameter lists")
    # t <- m t + (1 - m) s as one multi-tensor lerp (no per-parameter operators)
    torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)
    t_buffers, s_buffers = list(teacher.buffers()), list(student.buffers())
    if t_buffers:
        torch._foreach_copy_(t_buffers, s_buffers)


@dataclass(frozen=True)
class TeacherConfig:
    """EMA momentum (cosine schedule) and the temperatures (teacher warm-up, fixed student)."""

    momentum_start: float = 0.994
    momentum_end: float = 1.0
    temp_start: float = 0.04
    temp_end: float = 0.07
    temp_warmup: float = 0.05   # fraction of training over which the teacher temperature rises
    student_temp: float = 0.1

    def __post_init__(self) -> None:
        for name in ("momentum_start", "momentum_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("temp_start", "temp_end", "student_temp"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def momentum(self, progress: float) -> float:
        return cosine(self.momentum_start, self.momentum_end, progress)

    def teacher_temp(self, progress: float) -> float:
        return linear_warmup(self.temp_start, self.temp_end, progress, self.temp_warmup)
