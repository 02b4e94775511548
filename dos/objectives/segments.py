"""Point clouds of a batch are concatenated along the first dimension; `segments` says where each one starts.

Accepted forms (as in Pointcept): cumulative `offsets` (one entry per cloud, the last equal to the number of
points), or per-point `batch` ids (sorted, so that every cloud is a contiguous block of rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dos.batching import counts_to_offset, offset_to_batch, take_rows


def row_chunks(start: int, stop: int, width: int, elements: int = 1 << 22):
    """[a, b) row blocks of [start, stop) holding about `elements` values of `width` columns (16 MB of float32
    by default): the bound on every N x K temporary of the objective."""
    step = max(1, elements // max(width, 1))
    for a in range(start, stop, step):
        yield a, min(a + step, stop)


@dataclass(frozen=True)
class SegmentRows:
    """The clouds of a batch as row labels, for computing every cloud's column reductions at once.

    ids [N] (cloud of each row, on the rows' device), counts [S] rows per cloud, bounds the (start, stop) pairs.
    Per-cloud column sums of X are `onehot.T @ X`: a matmul, deterministic on every device (index_add_ on CUDA
    adds in a nondeterministic order).
    """

    ids: torch.Tensor
    counts: torch.Tensor
    bounds: list[tuple[int, int]]

    @property
    def num(self) -> int:
        return len(self.bounds)

    def onehot(self, dtype: torch.dtype) -> torch.Tensor:
        """[N, S] with 1 where row i belongs to cloud s."""
        return torch.nn.functional.one_hot(self.ids, self.num).to(dtype)

    def apply_per_cloud_(self, block: torch.Tensor, start: int, values: torch.Tensor, op: str,
                         gather: bool | None = None) -> torch.Tensor:
        """block <- block (op) values[cloud of each row] (returned), in place, for the rows [start, start + len(block)) of
        the batch; values [S, K], op "sub" or "mul".

        On CUDA the per-row values are one gather; on CPU each cloud's rows take its row of `values` by
        broadcasting (a batch holds a handful of clouds), which spares materialising and reading an N x K
        gather: on a memory-bound CPU core that is a third of the cost of the operation. `gather` forces either
        way (tests check that they agree).
        """
        if op not in ("sub", "mul"):
            raise ValueError(f"op must be 'sub' or 'mul', got {op!r}")
        stop = start + block.shape[0]
        if gather if gather is not None else block.device.type != "cpu":
            for a, b in row_chunks(start, stop, block.shape[1]):  # gathers of bounded size
                rows, other = block[a - start:b - start], take_rows(values, self.ids[a:b])
                rows.sub_(other) if op == "sub" else rows.mul_(other)
            return block
        for s, (a, b) in enumerate(self.bounds):
            lo, hi = max(a, start), min(b, stop)
            if hi > lo:
                rows = block[lo - start:hi - start]
                rows.sub_(values[s]) if op == "sub" else rows.mul_(values[s])
        return block


def segment_rows(num_points: int, segments: "torch.Tensor | SegmentRows | None", device: torch.device
                 ) -> SegmentRows:
    """SegmentRows of `segments` (offsets or sorted batch ids, validated as by `segment_bounds`); a SegmentRows
    is returned as it is (so that one loss builds it once for its Sinkhorn and its Softmap)."""
    if isinstance(segments, SegmentRows):
        if segments.ids.shape[0] != num_points:
            raise ValueError(f"segments describe {segments.ids.shape[0]} rows, the input has {num_points}")
        return segments
    bounds = segment_bounds(num_points, segments)
    counts = torch.tensor([b - a for a, b in bounds], dtype=torch.int64, device=device)
    ids = torch.repeat_interleave(torch.arange(len(bounds), device=device), counts, output_size=num_points)
    return SegmentRows(ids=ids, counts=counts, bounds=bounds)


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


# the batch-layout conversions live in dos.batching
offsets_from_counts = counts_to_offset
batch_ids_from_offsets = offset_to_batch
