"""Algorithm 1 and the Softmap loss written exactly as the paper states them, line by line.

Deliberately naive: every step materialises a new N x K tensor. It exists to verify `zipf_sinkhorn` and
`softmap_loss` (tests run it in float64) and to be the baseline of `dos bench objective`. Not for training.
"""

from __future__ import annotations

import torch


def zipf_sinkhorn_reference(logits: torch.Tensor, alpha: float, num_iters: int = 3) -> torch.Tensor:
    """Algorithm 1 on one point cloud, in the dtype of `logits` (use float64 for a trustworthy reference)."""
    k = logits.shape[1]
    w = torch.arange(1, k + 1, dtype=logits.dtype, device=logits.device) ** (-alpha)  # line 2
    w = w / w.sum()
    f = torch.exp(logits)                                                              # F = exp(cos / tau)
    f = f / f.sum()                                                                    # line 4
    for _ in range(num_iters):                                                         # lines 6-9
        f = f / f.sum(dim=1, keepdim=True)
        f = f * w / f.sum(dim=0, keepdim=True)
    return f / f.sum(dim=0, keepdim=True)                                              # line 11


def softmap_loss_reference(student_logits: torch.Tensor, teacher_targets: torch.Tensor) -> torch.Tensor:
    """(1/K) sum_k KL(T(:,k) || softmax_points(student)(:,k)) on one point cloud."""
    log_s = torch.log_softmax(student_logits, dim=0)
    kl = teacher_targets * (torch.log(teacher_targets) - log_s)
    kl = torch.where(teacher_targets > 0, kl, torch.zeros_like(kl))
    return kl.sum(dim=0).mean()
