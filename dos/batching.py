"""Helpers of the concatenated batch layout, in one place (the model, the objective, the pretraining pipeline and
the data transforms all use these).

B clouds of n_0, ..., n_{B-1} rows are stored as one [N, ...] tensor per attribute (N = sum n_b), with
`offset` = cumsum(n) (int64 [B]) or `batch` (int64 [N], the cloud of each row, sorted). Pointcept's layout.
Only torch: `import dos.batching` costs nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor


def offset_to_counts(offset: Tensor) -> Tensor:
    """[B] cumulative counts -> [B] per-cloud counts."""
    return torch.diff(offset, prepend=offset.new_zeros(1))


def counts_to_offset(counts: Tensor) -> Tensor:
    """[B] per-cloud counts -> [B] cumulative counts (int64)."""
    return torch.cumsum(counts.long(), dim=0)


def offset_to_batch(offset: Tensor) -> Tensor:
    """[B] offset -> [N] cloud id of every row (int64)."""
    counts = offset_to_counts(offset)
    return torch.repeat_interleave(torch.arange(len(counts), device=offset.device), counts)


def batch_to_offset(batch: Tensor, num_clouds: int | None = None) -> Tensor:
    """[N] sorted cloud ids -> [B] offset. `num_clouds` keeps trailing empty clouds."""
    return counts_to_offset(torch.bincount(batch, minlength=num_clouds or 0))


def offset_to_starts(offset: Tensor) -> Tensor:
    """[B] offset -> [B] index of the first row of each cloud."""
    return offset - offset_to_counts(offset)


def per_cloud_min(values: Tensor, batch: Tensor, num_clouds: int) -> Tensor:
    """[B, D] column minima of values [N, D] within each cloud (+inf for an empty cloud)."""
    out = torch.full((num_clouds, values.shape[1]), float("inf"), dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, batch[:, None].expand(-1, values.shape[1]), values, reduce="amin",
                              include_self=True)


def pack_keys(columns: Tensor, extent: Tensor | list[int] | None = None, what: str = "grid") -> Tensor:
    """Exact int64 key of each row of a non-negative integer matrix [N, D] (a voxel, or cloud id + voxel): the
    row's mixed-radix number, column 0 most significant, with `extent` (default: each column's max + 1) as
    radices. Rows compare as their keys do (lexicographic order). Raises when the keys would not fit in int64."""
    columns = columns.long()
    if extent is None:
        extent = (columns.amax(0) + 1) if len(columns) else columns.new_ones(columns.shape[1])
    extent_list = extent.tolist() if isinstance(extent, Tensor) else list(extent)
    total = 1
    for size in extent_list:
        total *= int(size)
    if total >= 2**62:
        raise ValueError(f"{what} of extent {extent_list} is too large for int64 keys: use a larger grid size")
    key = columns[:, 0].clone()
    for d in range(1, columns.shape[1]):
        key = key * int(extent_list[d]) + columns[:, d]
    return key


def take_rows(values: Tensor, index: Tensor) -> Tensor:
    """values[index] for an int64 index of any shape: [*index.shape, *values.shape[1:]].

    Through index_select, which on CPU gathers rows 2-3x faster than advanced indexing; its gradient
    (index_add_) is deterministic on CPU and, under torch.use_deterministic_algorithms, on CUDA.
    """
    if index.dim() == 1:
        return torch.index_select(values, 0, index)
    return torch.index_select(values, 0, index.reshape(-1)).view(*index.shape, *values.shape[1:])
