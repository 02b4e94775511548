"""Semantic softmaps and the Softmap loss.

A softmap normalises prototype scores across points (per prototype, per point cloud):
    S(i, k) = exp(l_ik) / sum_{j in cloud} exp(l_jk).
The Softmap loss is the mean over prototypes of KL(S~_T(:, k) || S_S(:, k)), averaged over point clouds.

`softmap_loss` is a fused autograd function: its forward never materialises log S_S, and its backward writes
the gradient (p_ik - T_ik) / (K B) directly, so the loss costs one N x K buffer (the gradient) instead of the
three or four that `-(T * log_softmax(x, 0)).sum()` allocates.
"""

from __future__ import annotations

import torch

from dos.objectives.segments import segment_bounds

_CHUNK_ELEMENTS = 1 << 22  # row blocks of about 16 MB of float32 bound every temporary


def _row_chunks(start: int, stop: int, width: int):
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for a in range(start, stop, step):
        yield a, min(a + step, stop)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 input, float64 for float64 input."""
    return torch.promote_types(x.dtype, torch.float32)


def softmap(logits: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over points for each prototype, within each point cloud (float32, or float64 for float64 input)."""
    out = torch.empty(logits.shape, dtype=_work_dtype(logits), device=logits.device)
    for start, stop in segment_bounds(logits.shape[0], segments):
        if stop > start:
            out[start:stop] = torch.softmax(logits[start:stop].to(out.dtype), dim=0)
    return out


def _column_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """logsumexp over rows of x, by row blocks with a running maximum (never a full-size temporary)."""
    k, dtype = x.shape[1], _work_dtype(x)
    running_max = torch.full((k,), float("-inf"), dtype=dtype, device=x.device)
    running_sum = torch.zeros(k, dtype=dtype, device=x.device)
    for a, b in _row_chunks(0, x.shape[0], k):
        block = x[a:b].to(dtype, copy=True)
        block_max = block.amax(dim=0)
        new_max = torch.maximum(running_max, block_max)
        running_sum.mul_(torch.exp(running_max - new_max).nan_to_num_(0.0))
        running_sum.add_(block.sub_(new_max).exp_().sum(dim=0))
        running_max = new_max
    return running_max + running_sum.log()


class _SoftmapKL(torch.autograd.Function):
    """(1/B) sum_clouds (1/K) sum_k KL(T(:,k) || softmax_cloud(x)(:,k)); gradient only to x."""

    @staticmethod
    def forward(ctx, student_logits: torch.Tensor, targets: torch.Tensor, bounds: list[tuple[int, int]]):
        k, dtype = student_logits.shape[1], _work_dtype(student_logits)
        clouds = [(a, b) for a, b in bounds if b > a]
        total = torch.zeros((), dtype=dtype, device=student_logits.device)
        lse_per_cloud, mass_per_cloud = [], []
        for start, stop in clouds:
            x, t = student_logits[start:stop], targets[start:stop]
            lse = _column_logsumexp(x)
            mass = torch.zeros(k, dtype=dtype, device=x.device)
            cross = torch.zeros(k, dtype=dtype, device=x.device)
            neg_entropy = torch.zeros(k, dtype=dtype, device=x.device)
            for a, b in _row_chunks(0, stop - start, k):
                tb = t[a:b].to(dtype)
                mass += tb.sum(dim=0)
                cross += (tb * x[a:b].to(dtype)).sum(dim=0)
                neg_entropy += torch.special.xlogy(tb, tb).sum(dim=0)
            # KL_k = sum_i t log t - sum_i t x + (sum_i t) lse_k
            total += (neg_entropy - cross + mass * lse).sum() / k
            lse_per_cloud.append(lse)
            mass_per_cloud.append(mass)
        ctx.save_for_backward(student_logits, targets, *lse_per_cloud, *mass_per_cloud)
        ctx.clouds = clouds
        return total / max(len(clouds), 1)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        student_logits, targets, *saved = ctx.saved_tensors
        clouds = ctx.clouds
        lses, masses = saved[: len(clouds)], saved[len(clouds):]
        k, dtype = student_logits.shape[1], _work_dtype(student_logits)
        scale = grad_output.to(dtype) / (k * max(len(clouds), 1))
        grad = torch.empty_like(student_logits)  # the clouds partition the rows: every row is written
        for (start, stop), lse, mass in zip(clouds, lses, masses):
            for a, b in _row_chunks(start, stop, k):
                block = student_logits[a:b].to(dtype, copy=True).sub_(lse).exp_().mul_(mass)  # (sum_i t_ik) p_ik
                block.sub_(targets[a:b].to(dtype)).mul_(scale)
                grad[a:b] = block
        return grad, None, None


def softmap_loss(student_logits: torch.Tensor, teacher_targets: torch.Tensor,
                 segments: torch.Tensor | None = None) -> torch.Tensor:
    """Softmap KL loss: (1/K) sum_k KL(S~_T(:,k) || S_S(:,k)), averaged over point clouds.

    `student_logits` [N, K] are student cosines / tau_S (their softmap is taken here); `teacher_targets` [N, K]
    are column-normalised teacher softmaps (e.g. from `zipf_sinkhorn`), treated as constants. The value is the
    true KL divergence: >= 0, and 0 exactly when the student softmap equals the target.
    """
    if student_logits.shape != teacher_targets.shape or student_logits.dim() != 2:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher targets "
                         f"{tuple(teacher_targets.shape)} must both be [N, K]")
    bounds = segment_bounds(student_logits.shape[0], segments)
    return _SoftmapKL.apply(student_logits, teacher_targets.detach(), bounds)
