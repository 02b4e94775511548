"""Small synthetic point batches with one point per voxel (what sparse convs expect)."""

from __future__ import annotations

import torch

from dos.models.point import Point


def random_voxels(num: int, extent: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """`num` distinct voxels of an extent[0] x extent[1] x extent[2] grid, as int64 [num, 3]."""
    cells = torch.randperm(extent[0] * extent[1] * extent[2], generator=generator)[:num]
    x = cells // (extent[1] * extent[2])
    y = (cells // extent[2]) % extent[1]
    z = cells % extent[2]
    return torch.stack([x, y, z], 1)


def random_batch(counts: list[int], extents: list[tuple[int, int, int]], channels: int = 6, seed: int = 0,
                 grid_size: float = 0.05) -> Point:
    generator = torch.Generator().manual_seed(seed)
    grids = [random_voxels(n, e, generator) for n, e in zip(counts, extents)]
    grid = torch.cat(grids)
    coord = (grid + torch.rand(grid.shape, generator=generator)) * grid_size
    feat = torch.randn(len(grid), channels, generator=generator)
    offset = torch.cumsum(torch.tensor(counts), 0)
    return Point.from_coords(coord, feat, offset, grid_size, grid_coord=grid)
