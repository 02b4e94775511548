"""Serialized patch attention: attention inside fixed-size patches of points in space-filling-curve order.

The points of each cloud (already in serialized order, clouds contiguous) are cut into patches of P points.
A cloud with n > P points is padded to a multiple of P by repeating, for each padded position p, the point
at p - P (Pointcept's scheme: the last patch is completed with points of the previous patch, so every patch
has exactly P real points and no mask is needed); a cloud with n <= P is one patch of n points.

Backends:
* "flash": flash_attn_varlen_qkvpacked_func on the padded sequence (CUDA, bf16/fp16; imported lazily).
* "sdpa": torch scaled_dot_product_attention on [patches, heads, P, d] for the full patches, plus one
  masked call for the short clouds (n < P), keys padded to the longest of them.
"auto" picks flash when flash-attn is installed and the tensors are on CUDA, else sdpa.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dos.batching import take_rows


@dataclass
class PatchLayout:
    """Index maps from serialized positions [0, N) to the padded patch layout [0, N_pad)."""

    patch_size: int
    pad_index: Tensor        # [N_pad] serialized position read by each padded slot
    unpad_index: Tensor      # [N] padded slot of each serialized position
    cu_seqlens: Tensor       # [num_seqs + 1] int32 boundaries of the sequences in the padded layout
    max_seqlen: int
    full_slots: Tensor       # [num_full * P] padded slots of the full (length-P) patches, in order
    short_index: Tensor      # [num_short, L] padded slots of the short clouds (clamped where masked)
    short_mask: Tensor       # [num_short, L] bool, True for real keys
    result_index: Tensor     # [N] row of each serialized position in cat(full results, short results)
    full_reads: Tensor       # [num_full * P] serialized position read by each full-patch slot (pad_index[full_slots])
    short_reads: Tensor      # [num_short, L] the same for the short clouds (pad_index[short_index])


def build_patch_layout(counts: Tensor, patch_size: int) -> PatchLayout:
    """Patch layout for clouds of `counts` points (serialized order, clouds contiguous).

    The per-cloud arithmetic is a handful of numpy operations on the host (counts is a [B] tensor, read once);
    on CPU the arrays become tensors as they are, on another device they are packed into one buffer and copied
    in one transfer.
    """
    device = counts.device
    c = counts.detach().to("cpu", torch.int64).numpy()
    P = int(patch_size)
    is_long = c > P
    padded = np.where(is_long, (c + P - 1) // P * P, c)
    start = np.cumsum(c) - c
    pad_start = np.cumsum(padded) - padded

    slot_cloud = np.repeat(np.arange(len(c)), padded)
    slot_local = np.arange(len(slot_cloud)) - pad_start[slot_cloud]
    pad_index = start[slot_cloud] + np.where(slot_local < c[slot_cloud], slot_local, slot_local - P)

    point_cloud = np.repeat(np.arange(len(c)), c)
    point_local = np.arange(len(point_cloud)) - start[point_cloud]
    unpad_index = pad_start[point_cloud] + point_local

    num_seqs = np.where(is_long, padded // P, (c > 0).astype(np.int64))
    seq_lengths = np.repeat(np.where(is_long, P, c), num_seqs)
    cu_seqlens = np.concatenate([[0], np.cumsum(seq_lengths)])
    max_seqlen = int(seq_lengths.max()) if len(seq_lengths) else 0

    is_full = c >= P
    full_slot_mask = is_full[slot_cloud]
    full_slots = np.flatnonzero(full_slot_mask)
    full_rank = np.cumsum(full_slot_mask) - 1

    short_clouds = np.flatnonzero((c > 0) & ~is_full)
    short_len = int(c[short_clouds].max()) if len(short_clouds) else 0
    positions = np.arange(short_len)
    short_n = c[short_clouds][:, None]
    short_index = pad_start[short_clouds][:, None] + np.minimum(positions[None], short_n - 1)
    short_mask = positions[None] < short_n
    short_rank = np.full(len(c), -1)
    short_rank[short_clouds] = np.arange(len(short_clouds))

    result_index = np.where(is_full[point_cloud], full_rank[unpad_index] if len(unpad_index) else 0,
                            len(full_slots) + short_rank[point_cloud] * short_len + point_local)
    parts = [pad_index, unpad_index, cu_seqlens, full_slots, short_index, short_mask, result_index,
             pad_index[full_slots], pad_index[short_index]]
    dtypes = [np.int64, np.int64, np.int32, np.int64, np.int64, np.bool_, np.int64, np.int64, np.int64]
    if device.type == "cpu":  # numpy arrays become tensors without any operator
        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=t)) for x, t in zip(parts, dtypes)]
    else:  # packed into one int64 buffer: one host-to-device copy
        packed = torch.from_numpy(np.concatenate([np.asarray(x, dtype=np.int64).reshape(-1) for x in parts]))
        packed = packed.to(device)
        tensors, at = [], 0
        for x, t in zip(parts, dtypes):
            view = packed[at:at + x.size].view(np.shape(x))
            tensors.append(view.int() if t is np.int32 else view.bool() if t is np.bool_ else view)
            at += x.size
    return PatchLayout(P, *tensors[:2], tensors[2], max_seqlen, *tensors[3:])


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def select_attention_backend(qkv: Tensor, backend: str = "auto") -> str:
    if backend == "auto":
        return "flash" if qkv.is_cuda and flash_attn_available() else "sdpa"
    if backend not in ("flash", "sdpa"):
        raise ValueError(f"unknown attention backend {backend!r}; expected auto, flash or sdpa")
    return backend


def _flash_patch_attention(qkv: Tensor, layout: PatchLayout, scale: float, dropout_p: float,
                           order: Tensor | None, inverse: Tensor | None) -> Tensor:
    from flash_attn import flash_attn_varlen_qkvpacked_func  # optional accelerator

    packed = take_rows(qkv, _reads(layout.pad_index, order))
    if packed.dtype not in (torch.float16, torch.bfloat16):
        packed = packed.to(torch.bfloat16)
    out = flash_attn_varlen_qkvpacked_func(packed, layout.cu_seqlens.to(qkv.device), layout.max_seqlen,
                                           dropout_p=dropout_p, softmax_scale=scale)
    return take_rows(out.to(qkv.dtype), _writes(layout.unpad_index, inverse))


def _reads(slots: Tensor, order: Tensor | None) -> Tensor:
    """Input rows read by padded slots that read serialized positions `slots`: order[slots] (one gather of the
    features instead of two)."""
    return slots if order is None else take_rows(order, slots)


def _writes(rows: Tensor, inverse: Tensor | None) -> Tensor:
    """Result rows of each input row, when `rows` are the result rows of each serialized position."""
    return rows if inverse is None else take_rows(rows, inverse)


def _sdpa_backends(device: torch.device) -> contextlib.AbstractContextManager:
    """On CUDA, SDPA without cuDNN attention: cuDNN builds an execution plan per new shape (~13 ms of CPU per
    call, and patch counts change every step), the flash and memory-efficient kernels need none."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _sdpa_patch_attention(qkv: Tensor, layout: PatchLayout, scale: float, dropout_p: float,
                          order: Tensor | None, inverse: Tensor | None) -> Tensor:
    _, _, H, d = qkv.shape
    P = layout.patch_size
    results = []
    if len(layout.full_slots):
        full = take_rows(qkv, _reads(layout.full_reads, order))
        q, k, v = full.view(-1, P, 3, H, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
        results.append(out.transpose(1, 2).reshape(-1, H, d))
    if len(layout.short_index):
        num_short, L = layout.short_index.shape
        short = take_rows(qkv, _reads(layout.short_reads.reshape(-1), order))
        q, k, v = short.view(num_short, L, 3, H, d).permute(2, 0, 3, 1, 4).unbind(0)
        mask = layout.short_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
        results.append(out.transpose(1, 2).reshape(-1, H, d))
    return take_rows(torch.cat(results) if len(results) > 1 else results[0], _writes(layout.result_index, inverse))


def patch_attention(qkv: Tensor, layout: PatchLayout, scale: float | None = None, dropout_p: float = 0.0,
                    backend: str = "auto", order: Tensor | None = None, inverse: Tensor | None = None) -> Tensor:
    """Attention within patches. qkv: [N, 3, heads, d] -> [N, heads, d].

    Without order, qkv is in serialized order and so is the result. With order (serialized position -> row)
    and its inverse, qkv and the result are in row order: the permutation is folded into the patch gathers.
    """
    if scale is None:
        scale = qkv.shape[-1] ** -0.5
    if qkv.shape[0] == 0:
        return qkv.new_zeros(0, qkv.shape[2], qkv.shape[3])
    if select_attention_backend(qkv, backend) == "flash":
        return _flash_patch_attention(qkv, layout, scale, dropout_p, order, inverse)
    with _sdpa_backends(qkv.device):
        return _sdpa_patch_attention(qkv, layout, scale, dropout_p, order, inverse)
