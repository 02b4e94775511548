"""Point-cloud transforms on torch tensors: crops, spatial and photometric augmentation, grid sampling.

All randomness comes from an explicit `torch.Generator`, so a seed fixes every view. Grid sampling keys
voxels exactly (linearised integer coordinates, no hashing), so there are no collisions to worry about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dos.batching import pack_keys
from dos.config.ranges import check_ranges


def _uniform(generator: torch.Generator, low: float, high: float, size=()) -> torch.Tensor:
    return torch.rand(size, generator=generator, dtype=torch.float64) * (high - low) + low


def nearest_crop(coord: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of the `keep` points nearest to a random point of the cloud (sorted by index)."""
    n = coord.shape[0]
    if keep >= n:
        return torch.arange(n)
    center = coord[torch.randint(n, (1,), generator=generator)]
    dist = (coord - center).square().sum(1)
    return torch.sort(torch.topk(dist, keep, largest=False).indices).values


def rotate_z(coord: torch.Tensor, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=coord.dtype)
    return coord @ rot.t()


@dataclass(frozen=True)
class RigidDraw:
    """p -> sign * (scale * R_z(angle) p), sign flipping x and / or y: one draw of SpatialAugment."""

    angle: float
    scale: float
    sign: tuple[float, float]

    def apply(self, coord: torch.Tensor) -> torch.Tensor:
        out = rotate_z(coord, self.angle) * self.scale
        return out * torch.tensor([*self.sign, 1.0], dtype=coord.dtype)


@dataclass(frozen=True)
class SpatialAugment:
    """Random rotation about z, isotropic scaling, flips of x / y, and Gaussian jitter (clipped)."""

    rotate: float = math.pi        # angle drawn from [-rotate, rotate]
    scale: tuple[float, float] = (0.9, 1.1)
    flip: float = 0.5              # probability of flipping x, and independently y
    jitter_sigma: float = 0.005
    jitter_clip: float = 0.02

    def __post_init__(self) -> None:
        check_ranges(self, positive=("scale",), nonnegative=("rotate", "jitter_sigma", "jitter_clip"),
                     probability=("flip",))
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"scale must be (low, high) with low <= high, got {self.scale}")

    def draw(self, generator: torch.Generator) -> "RigidDraw":
        """The rotation, scale and flips of one augmentation (what boxes must follow too)."""
        angle = float(_uniform(generator, -self.rotate, self.rotate))
        scale = float(_uniform(generator, *self.scale))
        flips = torch.rand(2, generator=generator) < self.flip
        return RigidDraw(angle, scale, (-1.0 if flips[0] else 1.0, -1.0 if flips[1] else 1.0))

    def __call__(self, coord: torch.Tensor, generator: torch.Generator,
                 draw: "RigidDraw | None" = None) -> torch.Tensor:
        """Augmented coordinates; `draw` = the rotation, scale and flips to apply (drawn here when None)."""
        draw = self.draw(generator) if draw is None else draw
        out = draw.apply(coord)
        if self.jitter_sigma > 0:
            noise = torch.randn(out.shape, generator=generator, dtype=out.dtype) * self.jitter_sigma
            out = out + noise.clamp_(-self.jitter_clip, self.jitter_clip)
        return out


@dataclass(frozen=True)
class PhotometricAugment:
    """Brightness / contrast / per-channel noise on colour channels in [0, 1], or scale noise on intensity."""

    channels: tuple[int, ...] = ()   # feature columns to augment (colour or intensity)
    brightness: float = 0.1
    contrast: float = 0.1
    noise_sigma: float = 0.02

    def __post_init__(self) -> None:
        check_ranges(self, nonnegative=("channels", "brightness", "contrast", "noise_sigma"))

    def __call__(self, feat: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.channels:
            return feat
        out = feat.clone()
        cols = list(self.channels)
        x = out[:, cols]
        mean = x.mean(0, keepdim=True)
        x = (x - mean) * float(_uniform(generator, 1 - self.contrast, 1 + self.contrast)) + mean
        x = x + float(_uniform(generator, -self.brightness, self.brightness))
        x = x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * self.noise_sigma
        out[:, cols] = x.clamp_(0.0, 1.0)
        return out


def voxel_coords(coord: torch.Tensor, grid_size: float) -> torch.Tensor:
    """floor((coord - min) / grid_size), int64 [N, 3], non-negative."""
    return torch.floor((coord - coord.amin(0)) / grid_size).long()


def linear_keys(grid: torch.Tensor) -> torch.Tensor:
    """Exact int64 key of each row of a non-negative integer matrix [N, D] (e.g. voxels, or cloud id + voxel):
    the row's mixed-radix number with the column extents as radices (`dos.batching.pack_keys`)."""
    return pack_keys(grid)


@dataclass
class GridSample:
    """One point per occupied voxel: `index` [M] kept points, `grid_coord` [M, 3] their voxels, `inverse` [N]
    the voxel (row of `index`) of every input point (to map voxel predictions back to all points)."""

    index: torch.Tensor
    grid_coord: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor


def _voxel_runs(coord: torch.Tensor, grid_size: float) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor,
                                                               torch.Tensor, torch.Tensor]:
    """Points grouped by voxel: (voxel_keys [M], extent [D], order [N], starts [M], counts [M], voxel [N]).
    `voxel_keys`: each occupied voxel's `linear_keys` key (int32 where the keys fit), ascending, with `extent`
    the radices; `order`: the point indices sorted by key, index-ascending within a voxel; `starts`,
    `counts`: each voxel's run in `order`; `voxel`: the run number of each position of `order`.

    Written for speed, as grid sampling runs on every view in data loading. The work is done on the CPU
    (other inputs are moved there; callers move the results back). One column at a time: contiguous 1-D
    tensors reduce several times faster than the columns of an [N, 3] tensor, and numpy does the transpose,
    which torch's CPU copies do slowly. Integer arithmetic and the stable (radix) sort run in int32 where
    the keys fit: half the bytes of int64. Run boundaries come from comparing sorted neighbours (a cumsum
    numbers the runs, numpy's flatnonzero finds their starts, about ten times faster than torch.nonzero)
    instead of unique_consecutive + repeat_interleave. The result is that of `voxel_coords` + `linear_keys`
    + a stable sort, bit for bit."""
    coord = coord.detach().cpu()
    floors = [torch.floor((column - column.min()) / grid_size)
              for column in torch.from_numpy(np.ascontiguousarray(coord.numpy().T))]
    extent = [int(floor.max()) + 1 for floor in floors]
    size = math.prod(extent)
    if size >= 2**62:
        raise ValueError(f"grid of extent {extent} is too large for int64 keys: use a larger grid size")
    columns = [floor.to(torch.int32 if size < 2**31 else torch.int64) for floor in floors]
    keys = columns[0].clone()
    for d in range(1, len(columns)):
        keys.mul_(extent[d]).add_(columns[d])
    sorted_keys, order = torch.sort(keys, stable=True)
    first = torch.ones(len(order), dtype=torch.bool)
    torch.ne(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    voxel = first.to(torch.int64).cumsum_(0).sub_(1)
    starts = torch.from_numpy(np.flatnonzero(first.numpy()))
    counts = torch.diff(starts, append=torch.tensor([len(order)]))
    return sorted_keys.index_select(0, starts), extent, order, starts, counts, voxel


def _unlinearise(keys: torch.Tensor, extent: list[int]) -> torch.Tensor:
    """The int64 [M, D] rows whose `linear_keys` are `keys` (the inverse of the mixed-radix number).
    Decoding the sorted voxel keys reads memory in order, where gathering the kept points' voxel coordinates
    would jump around it."""
    rest = keys.numpy()
    rows = np.empty((len(rest), len(extent)), dtype=np.int64)
    for d in range(len(extent) - 1, 0, -1):
        rest, rows[:, d] = np.divmod(rest, extent[d])
    rows[:, 0] = rest
    return torch.from_numpy(rows)


def grid_sample(coord: torch.Tensor, grid_size: float, generator: torch.Generator | None = None) -> GridSample:
    """Keep one point per voxel: a uniformly random one with a generator (training), else the first by index."""
    voxel_keys, extent, order, starts, counts, voxel = _voxel_runs(coord, grid_size)
    if generator is not None:
        pick = starts + (torch.rand(counts.shape, generator=generator, dtype=torch.float64) * counts).long()
    else:
        pick = starts
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order.numpy()] = voxel.numpy()  # numpy's scatter is faster than torch's on CPU
    device = coord.device
    return GridSample(index=order.index_select(0, pick).to(device),
                      grid_coord=_unlinearise(voxel_keys, extent).to(device),
                      inverse=torch.from_numpy(inverse).to(device), counts=counts.to(device))


def grid_fragments(coord: torch.Tensor, grid_size: float) -> list[torch.Tensor]:
    """Evaluation fragments: fragment j keeps the j-th point (cyclically) of every voxel, so that the fragments
    together cover every point, each fragment has one point per occupied voxel, and there are max(counts) of them."""
    _, _, order, starts, counts, _ = _voxel_runs(coord, grid_size)
    return [order[starts + torch.remainder(torch.full_like(counts, j), counts)].to(coord.device)
            for j in range(int(counts.max()))]
