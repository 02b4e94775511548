"""Pretraining samples and their collation.

Every random choice of a sample (crop, augmentations, grid sampling, block mask, token jitter) is drawn from that
sample's own generator, so a sample is the same whichever batch, rank or resumed run it lands in. A batch of B
samples holds 2B clouds: the first views of the B samples, then their second views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dos.pretrain.masking import MaskingConfig, block_mask
from dos.pretrain.student_input import StudentInput, build_student_input
from dos.pretrain.views import View, ViewConfig, make_views


@dataclass
class ViewPair:
    views: tuple[View, View]
    masks: tuple[torch.Tensor, torch.Tensor]  # True = masked, per view point
    jitter_seed: int
    grid_size: float                          # the views' input voxel (m): per sample, as sources may differ


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


def make_view_pair(coord: torch.Tensor, feat: torch.Tensor, views: ViewConfig, masking: MaskingConfig,
                   generator: torch.Generator, coord_in_feat: bool = True) -> ViewPair:
    pair = make_views(coord, feat, views, generator, coord_in_feat)
    masks = tuple(block_mask(v.coord, torch.tensor([v.coord.shape[0]]), masking.block_size, masking.ratio, generator)
                  for v in pair)
    jitter_seed = int(torch.randint(2**62, (1,), generator=generator))
    return ViewPair(views=pair, masks=masks, jitter_seed=jitter_seed, grid_size=views.grid_size)


def collate_pairs(pairs: list[ViewPair], mode: str, jitter_sigma: float = 0.01) -> PretrainBatch:
    """Each cloud's student input at its own pair's grid size (a joint batch may mix input voxels: the
    networks read integer grid coordinates per cloud)."""
    views = [p.views[0] for p in pairs] + [p.views[1] for p in pairs]
    masks = [p.masks[0] for p in pairs] + [p.masks[1] for p in pairs]
    seeds = [p.jitter_seed for p in pairs] + [p.jitter_seed + 1 for p in pairs]
    grids = [p.grid_size for p in pairs] * 2
    students, start = [], 0
    for view, mask, seed, grid_size in zip(views, masks, seeds, grids):
        n = view.coord.shape[0]
        s = build_student_input(view.coord, view.feat, view.grid_coord, torch.tensor([n]), mask, mode, grid_size,
                                torch.Generator().manual_seed(seed), jitter_sigma)
        s.index = s.index + start
        students.append(s)
        start += n
    student = StudentInput(
        coord=torch.cat([s.coord for s in students]), feat=torch.cat([s.feat for s in students]),
        grid_coord=torch.cat([s.grid_coord for s in students]),
        offset=torch.cumsum(torch.tensor([len(s.index) for s in students]), 0),
        index=torch.cat([s.index for s in students]),
        token_mask=None if students[0].token_mask is None else torch.cat([s.token_mask for s in students]),
        supervised=torch.cat([s.supervised for s in students]))
    return PretrainBatch(coord=torch.cat([v.coord for v in views]),
                         origin_coord=torch.cat([v.origin_coord for v in views]),
                         feat=torch.cat([v.feat for v in views]), grid_coord=torch.cat([v.grid_coord for v in views]),
                         offset=torch.cumsum(torch.tensor([v.coord.shape[0] for v in views]), 0),
                         masked=torch.cat(masks), student=student)
