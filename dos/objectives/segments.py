"""Point clouds of a batch are concatenated along the first dimension; `segments` says where each one starts.

Accepted forms (as in Pointcept): cumulative `offsets` (one entry per cloud, the last equal to the number of
points), or per-point `batch` ids (sorted, so that every cloud is a contiguous block of rows).
"""

from __future__ import annotations

import torch


def segment_bounds(num_points: int, segments: torch.Tensor | None) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of each point cloud. `None` means one cloud holding every row."""
    if segments is None:
        return [(0, num_points)]
    seg = torch.as_tensor(segments).reshape(-1).to("cpu", torch.int64)
    if seg.numel() == 0:
        raise ValueError("segments is empty")
    if int(seg[-1]) == num_points:  # batch ids never reach num_points, so this is unambiguous
        offsets = seg
        if (offsets[1:] < offsets[:-1]).any() or int(offsets[0]) < 0:
            raise ValueError(f"offsets must be non-decreasing and non-negative, got {offsets.tolist()[:8]}...")
    else:
        if seg.numel() != num_points:
            raise ValueError(
                f"segments must be offsets ending at {num_points} or {num_points} batch ids, got {seg.numel()} values "
                f"ending at {int(seg[-1])}")
        if (seg[1:] < seg[:-1]).any() or int(seg[0]) < 0:
            raise ValueError("batch ids must be sorted and non-negative: each cloud must be a contiguous block of rows")
        offsets = torch.cumsum(torch.bincount(seg), 0)
    starts = [0] + offsets[:-1].tolist()
    return [(a, b) for a, b in zip(starts, offsets.tolist())]


def offsets_from_counts(counts: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(counts.to(torch.int64), 0)


def batch_ids_from_offsets(offsets: torch.Tensor) -> torch.Tensor:
    counts = torch.diff(offsets, prepend=offsets.new_zeros(1))
    return torch.repeat_interleave(torch.arange(len(offsets), device=offsets.device), counts)
