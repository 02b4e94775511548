"""The point batch: several point clouds concatenated along the point axis, no padding.

A batch of B clouds with n_0, ..., n_{B-1} points is stored as one [N, ...] tensor per attribute
(N = sum n_b) plus `offset` = cumsum(n) (int64, [B]) and `batch` (int64, [N], the cloud id of each
point). This is the Pointcept layout; `dos.batching` converts between offset, batch ids and counts (re-exported here).

`Point` is a plain dataclass. Serialization fields (`codes`, `order`, `inverse`, `depth`) are filled by
`dos.models.serialization.serialize`; pooling fields (`pooling_inverse`, `pooling_parent`) by the
PTv3 grid pooling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from dos.batching import (batch_to_offset, counts_to_offset, offset_to_batch, offset_to_counts,  # noqa: F401
                          offset_to_starts, per_cloud_min)
from dos.models.ops.sparse_conv import voxel_keys


def compute_grid_coord(coord: Tensor, batch: Tensor, grid_size: float, num_clouds: int) -> Tensor:
    """floor((coord - per-cloud min) / grid_size) as int64 [N, 3]."""
    return torch.floor((coord - per_cloud_min(coord, batch, num_clouds)[batch]) / grid_size).long()


@dataclass
class Point:
    """A batch of point clouds in Pointcept's concatenated layout.

    coord:      [N, 3] float, point (or pooled-voxel mean) coordinates.
    feat:       [N, C] float, features.
    grid_coord: [N, 3] int64, voxel coordinates (non-negative, per cloud).
    offset:     [B] int64, cumulative point counts.
    batch:      [N] int64, cloud id per point (derived from offset when not given).
    grid_size:  voxel edge length of grid_coord (metres), if known; used in error messages.
    codes:      [n_orders, N] int64 serialization codes (batch << 3*depth | curve code).
    order:      [n_orders, N] int64, argsort of codes (serialized position -> point index).
    inverse:    [n_orders, N] int64, inverse permutation of order (point index -> serialized position).
    depth:      bits per axis used by the curve codes.
    order_names: the curve name of each row of codes/order/inverse.
    pooling_inverse: [N_parent] int64: for each point of the finer (parent) level, its index here.
    pooling_parent:  the finer Point this one was pooled from.
    curves:     `dos.models.serialization.CurveCodes` of these voxels, when known (encoded once per view at
                its finest level and carried through the poolings), so serializing needs no encoder.
    """

    coord: Tensor
    feat: Tensor
    grid_coord: Tensor
    offset: Tensor
    batch: Tensor | None = None
    grid_size: float | None = None
    codes: Tensor | None = None
    order: Tensor | None = None
    inverse: Tensor | None = None
    depth: int | None = None
    order_names: tuple[str, ...] = ()
    pooling_inverse: Tensor | None = None
    pooling_parent: Point | None = None
    curves: object | None = None  # CurveCodes (not imported here: serialization imports this module)

    # (offset, number of points) already checked against each other: a copy by dataclasses.replace that keeps
    # both skips the host read of offset[-1] (a device synchronisation on CUDA)
    checked: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.offset.dtype != torch.int64:
            self.offset = self.offset.long()
        if self.grid_coord.dtype != torch.int64:
            self.grid_coord = self.grid_coord.long()
        if self.batch is None:
            self.batch = offset_to_batch(self.offset)
        n = self.coord.shape[0]
        if self.feat.shape[0] != n or self.grid_coord.shape[0] != n or self.batch.shape[0] != n:
            raise ValueError(f"inconsistent point counts: coord {n}, feat {self.feat.shape[0]}, "
                             f"grid_coord {self.grid_coord.shape[0]}, batch {self.batch.shape[0]}")
        if self.checked is None or self.checked[0] is not self.offset or self.checked[1] != n:
            if len(self.offset) and int(self.offset[-1]) != n:
                raise ValueError(f"offset[-1] = {int(self.offset[-1])} but there are {n} points")
            self.checked = (self.offset, n)

    @classmethod
    def from_coords(cls, coord: Tensor, feat: Tensor, offset: Tensor, grid_size: float,
                    grid_coord: Tensor | None = None) -> Point:
        """Build a batch; grid_coord = floor((coord - per-cloud min) / grid_size) unless given."""
        offset = offset.long()
        batch = offset_to_batch(offset)
        if grid_coord is None:
            grid_coord = compute_grid_coord(coord, batch, grid_size, len(offset))
        return cls(coord=coord, feat=feat, grid_coord=grid_coord, offset=offset, batch=batch,
                   grid_size=grid_size)

    @property
    def num_points(self) -> int:
        return self.coord.shape[0]

    @property
    def num_clouds(self) -> int:
        return len(self.offset)

    @property
    def counts(self) -> Tensor:
        return offset_to_counts(self.offset)

    def with_feat(self, feat: Tensor) -> Point:
        """A shallow copy with new features (all index maps shared)."""
        return replace(self, feat=feat)


def first_point_per_voxel(grid_coord: Tensor, batch: Tensor) -> Tensor:
    """Sorted indices keeping one point (the first) per (cloud, voxel): sparse convs need unique voxels."""
    keys = voxel_keys(grid_coord, batch)
    _, cluster = torch.unique(keys, return_inverse=True)
    first = torch.full((int(cluster.max()) + 1,), len(keys), dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, cluster, torch.arange(len(keys), device=keys.device), reduce="amin")
    return torch.sort(first).values
