"""The bird's-eye-view grid, and the scatter of a backbone's point set into it.

A backbone outputs a point set (features [N, C] at metric coordinates [N, 3], Pointcept's concatenated batch
layout with `offset`). CenterPoint's 2D neck and heads need a dense image, so each point's feature goes to the
BEV cell its (x, y) falls in; points outside the range (x, y or z) are dropped and empty cells are 0.

Column = x, row = y: cell (row, col) covers x in [x_min + col * cell, x_min + (col + 1) * cell), likewise y, and
its flat index in an [H, W] map is row * W + col (the index the targets and the decoder use).

Pooling: "max" (default) is deterministic on every device, since the maximum of a set does not depend on the
order the values arrive in. "mean" sums with `index_add_`, deterministic on CPU; on CUDA the float sum order of
atomics may vary in the last bits unless `torch.use_deterministic_algorithms(True)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dos.batching import offset_to_batch

POOLS = ("max", "mean")


@dataclass(frozen=True)
class BevGrid:
    """A point-cloud range (x_min, y_min, z_min, x_max, y_max, z_max) in metres, cut into square BEV cells."""

    point_cloud_range: tuple[float, float, float, float, float, float]
    cell_size: float

    def __post_init__(self) -> None:
        if len(self.point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range needs 6 values (x_min, y_min, z_min, x_max, y_max, z_max), "
                             f"got {self.point_cloud_range!r}")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        if any(not a < b for a, b in zip(lo, hi)):
            raise ValueError(f"point_cloud_range must have min < max on every axis, got {self.point_cloud_range!r}")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be > 0, got {self.cell_size!r}")
        for axis, extent in zip("xy", (hi[0] - lo[0], hi[1] - lo[1])):
            cells = extent / self.cell_size
            if abs(cells - round(cells)) > 1e-6:
                raise ValueError(f"the {axis} extent {extent} m is not a whole number of cells of "
                                 f"{self.cell_size} m: adjust point_cloud_range or cell_size")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W): rows along y, columns along x."""
        x0, y0, _, x1, y1, _ = self.point_cloud_range
        return round((y1 - y0) / self.cell_size), round((x1 - x0) / self.cell_size)

    def cell_position(self, xy: Tensor) -> Tensor:
        """[..., 2] metric (x, y) -> [..., 2] continuous (col, row) in cell units (floor = the cell)."""
        origin = xy.new_tensor(self.point_cloud_range[:2])
        return (xy - origin) / self.cell_size

    def metric_position(self, col_row: Tensor) -> Tensor:
        """Inverse of `cell_position`."""
        return col_row * self.cell_size + col_row.new_tensor(self.point_cloud_range[:2])


def scatter_to_bev(feat: Tensor, coord: Tensor, offset: Tensor, grid: BevGrid, pool: str = "max") -> Tensor:
    """Point set -> dense BEV image [B, C, H, W] (B = len(offset)), pooling the points of each cell."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if feat.shape[0] != coord.shape[0]:
        raise ValueError(f"{feat.shape[0]} features for {coord.shape[0]} coordinates")
    num_clouds, channels = len(offset), feat.shape[1]
    height, width = grid.shape
    batch = offset_to_batch(offset.to(coord.device))
    lo = coord.new_tensor(grid.point_cloud_range[:3])
    hi = coord.new_tensor(grid.point_cloud_range[3:])
    cell = torch.floor(grid.cell_position(coord[:, :2])).long()
    inside = ((coord >= lo) & (coord < hi)).all(1) & (cell[:, 0] < width) & (cell[:, 1] < height)
    col, row, batch, values = cell[inside, 0], cell[inside, 1], batch[inside], feat[inside]
    flat = (batch * height + row) * width + col                       # cell index over the whole batch
    index = flat[:, None].expand(-1, channels)
    out = feat.new_zeros(num_clouds * height * width, channels)
    if pool == "max":
        out = out.scatter_reduce(0, index, values, reduce="amax", include_self=False)
    else:
        count = torch.bincount(flat, minlength=len(out)).clamp(min=1).to(feat.dtype)
        out = out.index_add(0, flat, values) / count[:, None]
    return out.view(num_clouds, height, width, channels).permute(0, 3, 1, 2).contiguous()
