"""Two augmented views of one random crop, keeping the original coordinates for cross-view matching.

A cloud is cropped once (nearest points around a random centre), then duplicated; each copy gets its own
spatial and photometric augmentation and its own random grid sampling. `origin_coord` keeps the crop's
un-augmented coordinates so that points of the two views can be matched in a common frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from dos.data.transforms import PhotometricAugment, SpatialAugment, grid_sample, nearest_crop
from dos.config.ranges import check_ranges


@dataclass(frozen=True)
class ViewConfig:
    grid_size: float = 0.05                  # input voxel size (m): 0.05 outdoor, 0.02 indoor
    crop_ratio: tuple[float, float] = (0.6, 1.0)  # fraction of the cloud kept by the crop
    max_points: int = 0                      # cap the crop at this many points (0 = no cap)
    spatial: SpatialAugment = field(default_factory=SpatialAugment)
    photometric: PhotometricAugment = field(default_factory=PhotometricAugment)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("grid_size", "crop_ratio"), nonnegative=("max_points",))
        if not self.crop_ratio[0] <= self.crop_ratio[1] <= 1:
            raise ValueError(f"crop_ratio must be (low, high) with low <= high <= 1, got {self.crop_ratio}")


@dataclass
class View:
    coord: torch.Tensor         # [M, 3] augmented coordinates (what the networks see)
    origin_coord: torch.Tensor  # [M, 3] coordinates in the crop's original frame
    feat: torch.Tensor          # [M, C] augmented features
    grid_coord: torch.Tensor    # [M, 3] voxel coordinates of the view (one point per voxel)


def _feature_with_coords(coord: torch.Tensor, feat: torch.Tensor, coord_in_feat: bool) -> torch.Tensor:
    return torch.cat([coord, feat], dim=1) if coord_in_feat else feat


def make_view(coord: torch.Tensor, feat: torch.Tensor, config: ViewConfig, generator: torch.Generator,
              coord_in_feat: bool = True) -> View:
    augmented = config.spatial(coord, generator)
    sample = grid_sample(augmented, config.grid_size, generator)
    kept = sample.index
    view_feat = config.photometric(feat[kept], generator)
    return View(coord=augmented[kept], origin_coord=coord[kept],
                feat=_feature_with_coords(augmented[kept], view_feat, coord_in_feat).float(),
                grid_coord=sample.grid_coord)


def random_crop(coord: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """Indices of one random crop: the nearest ratio x N points (ratio uniform in `crop_ratio`, at most
    `max_points`) around a random centre. The crop rule of the pretraining views and of `dos distill`."""
    low, high = config.crop_ratio
    ratio = float(torch.rand((), generator=generator, dtype=torch.float64)) * (high - low) + low
    keep = max(1, math.ceil(ratio * coord.shape[0]))
    if config.max_points:
        keep = min(keep, config.max_points)
    return nearest_crop(coord, keep, generator)


def make_views(coord: torch.Tensor, feat: torch.Tensor, config: ViewConfig, generator: torch.Generator,
               coord_in_feat: bool = True) -> tuple[View, View]:
    """Crop once, then two independently augmented and grid-sampled views. Features are [xyz, feat] when
    `coord_in_feat` (the PTv3 convention: the augmented coordinates are input channels too)."""
    crop = random_crop(coord, config, generator)
    coord, feat = coord[crop], feat[crop]
    return (make_view(coord, feat, config, generator, coord_in_feat),
            make_view(coord, feat, config, generator, coord_in_feat))
