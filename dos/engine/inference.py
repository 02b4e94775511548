"""The evaluation protocol: per-point class probabilities of a whole cloud from a voxel-level predictor.

Backbone-agnostic: the network is hidden behind

    predict_fn(coord [M, 3], feat [M, F], grid_coord [M, 3] int64, offset [B] int64) -> logits [M, num_classes]

which is called on B grid-sampled point sets concatenated (Pointcept-style `offset`: cumulative end index of
each set). It receives the *augmented* coordinates of the kept points, their *original* (untransformed)
per-point features, and their voxel coordinates, and is responsible for building the network inputs (e.g.
concatenating colours and coordinates, or centring). Features that are geometric (normals) are not rotated
with the coordinates: a predict_fn that uses them must not be combined with rotation/flip TTA.

Protocol of `predict_points`, for each test-time augmentation (applied to the coordinates before
voxelisation):

* without fragments: one point per voxel (the first by index, deterministic), and every point of the cloud
  receives the probabilities of its voxel's kept point (through the grid-sample inverse);
* with fragments: fragment j holds the j-th point of every voxel (cyclically, see `grid_fragments`), every
  fragment is predicted and each point receives the probabilities of the fragments it is in. Every point is in
  at least one fragment; points of small voxels are in several (they are repeated cyclically) and their votes
  add up.

Softmax probabilities (float32) are summed over fragments and augmentations; the argmax of the sum is the
prediction. The votes of a point are not normalised by their number, which leaves the argmax unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from dos.data.transforms import grid_fragments, grid_sample, voxel_coords

PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Augmentation:
    """A deterministic test-time transform of the coordinates: rotation about the z axis (radians, about the
    origin), then isotropic scaling, then x -> -x if `flip_x`."""

    rotate_z: float = 0.0
    scale: float = 1.0
    flip_x: bool = False

    def apply(self, coord: torch.Tensor) -> torch.Tensor:
        c, s = math.cos(self.rotate_z), math.sin(self.rotate_z)
        x, y, z = coord[:, 0], coord[:, 1], coord[:, 2]
        out = torch.stack([c * x - s * y, s * x + c * y, z], dim=1) * self.scale
        if self.flip_x:
            out[:, 0] = -out[:, 0]
        return out


IDENTITY = Augmentation()


def default_tta(rotations: int = 4, scales: Sequence[float] = (0.95, 1.05),
                flips: Sequence[bool] = (False, True)) -> list[Augmentation]:
    """The full grid of `rotations` equally spaced z rotations (0, pi/2, pi, 3pi/2 by default) x `scales`
    x `flips`: 4 x 2 x 2 = 16 augmentations by default (close to Pointcept's ScanNet test-time set of
    rotations, 0.95 / 1.05 scalings and a flip, taken as a full product)."""
    return [Augmentation(rotate_z=2 * math.pi * k / rotations, scale=float(scale), flip_x=bool(flip))
            for k in range(rotations) for scale in scales for flip in flips]


@dataclass
class _PointSet:
    """One grid-sampled point set: `index` [M] kept points; `inverse` [N] maps every point of the cloud to a
    row of the set (no fragments), or None: then row i votes for point index[i] only (a fragment)."""

    coord: torch.Tensor
    grid_coord: torch.Tensor
    index: torch.Tensor
    inverse: torch.Tensor | None


def _point_sets(coord: torch.Tensor, grid_size: float, fragments: bool,
                augmentations: Sequence[Augmentation]) -> Iterator[_PointSet]:
    for aug in augmentations:
        moved = aug.apply(coord)
        if fragments:
            grid = voxel_coords(moved, grid_size)
            for index in grid_fragments(moved, grid_size):
                yield _PointSet(moved[index], grid[index], index, None)
        else:
            sample = grid_sample(moved, grid_size)
            yield _PointSet(moved[sample.index], sample.grid_coord, sample.index, sample.inverse)


def _batches(sets: Iterator[_PointSet], max_points: int | None) -> Iterator[list[_PointSet]]:
    """Consecutive point sets packed up to `max_points` points per call (a larger set goes alone, whole)."""
    batch: list[_PointSet] = []
    size = 0
    for s in sets:
        m = len(s.index)
        if batch and (max_points is None or size + m > max_points):
            yield batch
            batch, size = [], 0
        batch.append(s)
        size += m
    if batch:
        yield batch


@torch.no_grad()
def predict_points(predict_fn: PredictFn, coord: torch.Tensor, feat: torch.Tensor, grid_size: float, *,
                   num_classes: int, fragments: bool = False,
                   augmentations: Sequence[Augmentation] = (IDENTITY,),
                   max_points_per_call: int | None = None) -> torch.Tensor:
    """Summed softmax probabilities [N, num_classes] (float32, on coord's device) of every point of one cloud.

    See the module docstring for the protocol and the `predict_fn` contract. `max_points_per_call`: None
    calls predict_fn on one point set (one fragment, or one augmentation's grid sample) at a time; an integer
    packs consecutive point sets into one call while their total stays within it (a set larger than the
    limit is still predicted whole, alone, since splitting a cloud would change its prediction).
    """
    if coord.ndim != 2 or coord.shape[1] != 3 or coord.shape[0] == 0:
        raise ValueError(f"coord must be a non-empty [N, 3] tensor, got shape {tuple(coord.shape)}")
    if feat.shape[0] != coord.shape[0]:
        raise ValueError(f"feat has {feat.shape[0]} rows for {coord.shape[0]} points")
    if not grid_size > 0:
        raise ValueError(f"grid_size must be positive, got {grid_size}")
    if not augmentations:
        raise ValueError("augmentations is empty: pass (IDENTITY,) for no test-time augmentation")
    if max_points_per_call is not None and max_points_per_call < 1:
        raise ValueError(f"max_points_per_call must be positive or None, got {max_points_per_call}")

    n = coord.shape[0]
    out = torch.zeros(n, num_classes, dtype=torch.float32, device=coord.device)
    sets = _point_sets(coord, grid_size, fragments, augmentations)
    for batch in _batches(sets, max_points_per_call):
        sizes = torch.tensor([len(s.index) for s in batch], dtype=torch.long, device=coord.device)
        logits = predict_fn(torch.cat([s.coord for s in batch]),
                            torch.cat([feat[s.index] for s in batch]),
                            torch.cat([s.grid_coord for s in batch]),
                            torch.cumsum(sizes, 0))
        if logits.shape != (int(sizes.sum()), num_classes):
            raise ValueError(f"predict_fn returned logits of shape {tuple(logits.shape)}, expected "
                             f"({int(sizes.sum())}, {num_classes})")
        probs = torch.softmax(logits.float(), dim=1).to(out.device)
        for s, p in zip(batch, torch.split(probs, sizes.tolist())):
            if s.inverse is None:
                out.index_add_(0, s.index, p)
            else:
                out += p[s.inverse]
    return out
