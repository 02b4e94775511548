"""Collation of pretraining samples: 2B clouds (the first views of B samples, then their second views), the
block mask of every view, and the student's input for the distillation mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dos.pretrain.masking import block_mask
from dos.pretrain.student_input import StudentInput, build_student_input
from dos.pretrain.views import View


@dataclass
class PretrainBatch:
    coord: torch.Tensor         # [N, 3] full views (teacher input), clouds [v1_0..v1_{B-1}, v2_0..v2_{B-1}]
    origin_coord: torch.Tensor  # [N, 3]
    feat: torch.Tensor          # [N, C]
    grid_coord: torch.Tensor    # [N, 3]
    offset: torch.Tensor        # [2B]
    masked: torch.Tensor        # [N] bool
    student: StudentInput

    @property
    def num_samples(self) -> int:
        return len(self.offset) // 2


def collate_views(pairs: list[tuple[View, View]], mode: str, mask_ratio: float, mask_block: float,
                  grid_size: float, generator: torch.Generator, jitter_sigma: float = 0.01) -> PretrainBatch:
    views = [pair[0] for pair in pairs] + [pair[1] for pair in pairs]
    offset = torch.cumsum(torch.tensor([v.coord.shape[0] for v in views]), 0)
    coord = torch.cat([v.coord for v in views])
    grid = torch.cat([v.grid_coord for v in views])
    masked = block_mask(coord, offset, mask_block, mask_ratio, generator)
    feat = torch.cat([v.feat for v in views])
    student = build_student_input(coord, feat, grid, offset, masked, mode, grid_size, generator, jitter_sigma)
    return PretrainBatch(coord=coord, origin_coord=torch.cat([v.origin_coord for v in views]), feat=feat,
                         grid_coord=grid, offset=offset, masked=masked, student=student)
