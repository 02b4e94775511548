"""Pairing student supervision units with teacher units, within a view and across the two views.

A "unit" is a voxel of the supervision grid (e.g. 0.2 m outdoor, reached by the encoder's pooling); the
encoder returns, for each input point, the unit it belongs to (`point_to_unit`).
- Same view: the student's grid is a subset of the teacher's (same origin), so a student point's teacher unit
  is the unit of the same view point: exact, no search.
- Cross view: units are matched by their mean original coordinates (shared by both views) to the nearest
  teacher unit of the other view within `radius`; student units with no teacher unit that close are left out
  and counted.
"""

from __future__ import annotations

import itertools

import torch

from dos.batching import pack_keys


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.zeros((size,) + values.shape[1:], dtype=values.dtype, device=values.device)
    out.index_add_(0, index, values)
    counts = torch.bincount(index, minlength=size).clamp_min(1).to(values.dtype)
    return out / counts.view(-1, *([1] * (values.dim() - 1)))


def same_view_pairs(student_point_to_unit: torch.Tensor, student_index: torch.Tensor,
                    teacher_point_to_unit: torch.Tensor, num_student_units: int) -> torch.Tensor:
    """Teacher unit of each student unit [Ms] (the smallest one if a unit's points disagree, e.g. jittered tokens)."""
    teacher_unit = teacher_point_to_unit[student_index]
    out = torch.full((num_student_units,), torch.iinfo(torch.long).max, dtype=torch.long,
                     device=teacher_unit.device)
    return out.scatter_reduce_(0, student_point_to_unit, teacher_unit, reduce="amin")


def _cell_key_steps(extent: torch.Tensor, device: torch.device) -> torch.Tensor:
    """[27] key differences of the cells (dx, dy, dz) in {-1, 0, 1}^3 around a cell (mixed radix of `extent`)."""
    steps = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), device=device)
    return (steps[:, 0] * extent[1] + steps[:, 1]) * extent[2] + steps[:, 2]


def radius_nearest(query: torch.Tensor, query_cloud: torch.Tensor, ref: torch.Tensor, ref_cloud: torch.Tensor,
                   radius: float) -> torch.Tensor:
    """Index of the nearest `ref` point of the same cloud id within `radius` of each query, or -1. Hash grid with
    cells of size `radius`: only the 27 surrounding cells hold candidates, looked up all at once (the cell keys
    of a query's neighbours are its own key plus 27 constants, as the extent has a cell of margin on each side).
    Ties go to the smaller index."""
    device = query.device
    result = torch.full((query.shape[0],), -1, dtype=torch.long, device=device)
    if query.shape[0] == 0 or ref.shape[0] == 0:
        return result
    q_cell = torch.floor(query / radius).long()
    r_cell = torch.floor(ref / radius).long()
    low = torch.minimum(q_cell.amin(0), r_cell.amin(0)) - 1
    extent = torch.maximum(q_cell.amax(0), r_cell.amax(0)) - low + 2
    clouds = int(max(query_cloud.max(), ref_cloud.max())) + 1

    radices = [clouds, *extent.tolist()]

    def key(cloud: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return pack_keys(torch.cat([cloud[:, None], cell - low], 1), radices,
                         what=f"cross-view matching grid (radius {radius})")
    ref_keys, ref_order = torch.sort(key(ref_cloud, r_cell))
    # every (query, neighbouring cell) pair at once: [Q, 27] cell keys, then the ref points of each cell
    cell_keys = key(query_cloud, q_cell)[:, None] + _cell_key_steps(extent, device)[None, :]
    lo = torch.searchsorted(ref_keys, cell_keys, side="left").flatten()
    n = torch.searchsorted(ref_keys, cell_keys, side="right").flatten() - lo
    q_idx = torch.repeat_interleave(torch.arange(query.shape[0], device=device), n.view(-1, 27).sum(1))
    # candidate j of cell c sits at sorted position lo[c] + j = (lo[c] - first[c]) + (its rank among all)
    first = torch.cumsum(n, 0) - n
    r_idx = ref_order[torch.repeat_interleave(lo - first, n) + torch.arange(len(q_idx), device=device)]
    d = (query[q_idx].double() - ref[r_idx].double()).square().sum(1)
    # nearest per query, ties to the smaller index: min distance, then min index among the closest
    best_dist = torch.full((query.shape[0],), float("inf"), dtype=torch.float64, device=device).scatter_reduce(
        0, q_idx, d, reduce="amin")
    closest = d == best_dist[q_idx]
    best = torch.full((query.shape[0],), -1, dtype=torch.long, device=device).scatter_reduce(
        0, q_idx[closest], r_idx[closest], reduce="amin", include_self=False)
    return torch.where(best_dist <= radius * radius, best, torch.full_like(best, -1))
