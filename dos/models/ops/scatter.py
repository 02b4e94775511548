"""Segment reductions: out[s] = reduce(src[i] for i with index[i] == s).

torch-scatter is used when installed (imported lazily), otherwise torch.Tensor.scatter_reduce with
include_self=False (as fast on CPU). Empty segments give 0.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

_TORCH_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def torch_scatter_available() -> bool:
    return importlib.util.find_spec("torch_scatter") is not None


def segment_reduce(src: Tensor, index: Tensor, num_segments: int, reduce: str = "sum",
                   backend: str = "auto") -> Tensor:
    """Reduce rows of src [N, ...] into [num_segments, ...] by index [N] (int64).

    reduce: "sum" | "mean" | "max" | "min"; backend: "auto" | "torch" | "torch_scatter".
    """
    if reduce not in _TORCH_REDUCE:
        raise ValueError(f"reduce must be one of {tuple(_TORCH_REDUCE)}, got {reduce!r}")
    if backend == "auto":
        backend = "torch_scatter" if torch_scatter_available() else "torch"
    if backend == "torch_scatter":
        import torch_scatter  # optional accelerator
        return torch_scatter.scatter(src, index, dim=0, dim_size=num_segments, reduce=reduce)
    if backend != "torch":
        raise ValueError(f"unknown scatter backend {backend!r}")
    out = src.new_zeros((num_segments,) + tuple(src.shape[1:]))
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, expanded, src, reduce=_TORCH_REDUCE[reduce], include_self=False)


def segment_sum(src: Tensor, index: Tensor, num_segments: int, backend: str = "auto") -> Tensor:
    return segment_reduce(src, index, num_segments, "sum", backend)


def segment_mean(src: Tensor, index: Tensor, num_segments: int, backend: str = "auto") -> Tensor:
    return segment_reduce(src, index, num_segments, "mean", backend)


def segment_max(src: Tensor, index: Tensor, num_segments: int, backend: str = "auto") -> Tensor:
    return segment_reduce(src, index, num_segments, "max", backend)
