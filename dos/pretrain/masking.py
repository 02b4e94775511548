"""Block masking: cubes of `block_size` metres; a `ratio` of the occupied cubes of each cloud is masked."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dos.batching import offset_to_batch, pack_keys, per_cloud_min


def block_mask(coord: torch.Tensor, offset: torch.Tensor, block_size: float, ratio: float,
               generator: torch.Generator) -> torch.Tensor:
    """Boolean [N], True where the point is masked. Exactly round(ratio * blocks) blocks per cloud are masked."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"masking.ratio must be in [0, 1), got {ratio}")
    if block_size <= 0:
        raise ValueError(f"masking.block_size must be > 0, got {block_size}")
    cloud = offset_to_batch(offset)
    cell = torch.floor((coord - per_cloud_min(coord, cloud, len(offset))[cloud]) / block_size).long()
    extent = (cell.amax(0) + 1).tolist()
    key = pack_keys(torch.cat([cloud[:, None], cell], 1), [len(offset), *extent], what="masking block grid")
    blocks, block_of_point = torch.unique(key, return_inverse=True)
    block_cloud = torch.div(blocks, extent[0] * extent[1] * extent[2], rounding_mode="floor")
    blocks_per_cloud = torch.bincount(block_cloud, minlength=len(offset))
    # rank the blocks of each cloud in a random order: sort by (cloud, random score)
    score = torch.rand(len(blocks), generator=generator, dtype=torch.float64)
    order = torch.argsort(block_cloud.double() * 2.0 + score)
    first_block = torch.cumsum(blocks_per_cloud, 0) - blocks_per_cloud
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - first_block[block_cloud[order]]
    num_masked = torch.round(blocks_per_cloud.double() * ratio).long()
    block_masked = rank < num_masked[block_cloud]
    return block_masked[block_of_point]


@dataclass(frozen=True)
class MaskingConfig:
    ratio: float = 0.7          # fraction of blocks masked (0.7 segmentation, 0.6 detection)
    block_size: float = 1.0     # cube edge in metres (1.0 outdoor, 0.4 indoor)
    jitter_sigma: float = 0.01  # token_jitter mode only: sigma of the masked tokens' coordinate jitter (m)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {self.ratio}")
        if self.block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {self.block_size}")
