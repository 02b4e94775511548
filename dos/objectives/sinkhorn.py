"""Zipf-Sinkhorn (Algorithm 1 of the paper) and the uniform Sinkhorn-Knopp it generalises.

Algorithm 1, for F = exp(logits) of shape [N, K] (N visible points, K prototypes):
    w_k ∝ 1/k^alpha;  F <- F / sum(F);  T times: rows to sum 1, then columns to sum w_k;  finally columns to sum 1.

How it is computed here, and why it is the same thing:
- Every iteration starts with a row normalisation, so any positive per-row factor applied to F beforehand
  (including the global normalisation of line 4) cancels. We therefore work on G = exp(logits - rowmax),
  whose entries lie in (0, 1]: no overflow even for tau = 0.01 (|logits| <= 100).
- F is never rewritten during the iterations: it is kept as diag(u) G diag(v) and the two scaling vectors are
  updated with one matrix-vector product each (u = 1 / (G v), v = w / (G^T u)). That is two reads of G per
  iteration and no N x K temporaries, against two full rewrites for the textbook version.
- At low temperature (tau = 0.01: logits span 200 nats) the column scalings themselves can span e^100, and an
  entry of G that underflowed relative to its row maximum may matter again. When log v spans more than 25 nats
  the scalings are absorbed into G, rebuilt from the logits (the log-stabilised Sinkhorn of Schmitzer 2019);
  a prototype whose whole column underflowed ("dead") gets its mass from a log-domain sum. Typical teacher
  temperatures (0.04-0.07) never trigger either, and then G is built once.
- All arithmetic is float32 whatever the input dtype (bf16 / fp16 logits are up-cast on read).
Each point cloud of a batch (see `segments`) is its own transport problem. No gradient flows through the
result: it is a distillation target.
"""

from __future__ import annotations

from typing import Callable

import torch

from dos.objectives.segments import SegmentRows, segment_rows

# Column mass below which fp32 underflow may have emptied a prototype's column; its mass is then taken in the
# log domain. Entries lost to underflow are < 1.2e-38, so above this mass their relative error is < 1e-8.
_DEAD_COLUMN_MASS = 1e-30
# When the column scalings span more than this many nats, entries of G that underflowed relative to their row
# maximum could matter again: the scalings are then absorbed into G (G is rebuilt from the logits).
_ABSORB_LOG_RANGE = 25.0

AllReduce = Callable[[torch.Tensor], torch.Tensor]


def zipf_prior(num_prototypes: int, alpha: float, device: torch.device | str | None = None) -> torch.Tensor:
    """w_k ∝ 1/k^alpha for k = 1..K, summing to 1 (float32). alpha = 0 is the uniform prior."""
    if num_prototypes < 1:
        raise ValueError(f"num_prototypes must be >= 1, got {num_prototypes}")
    if alpha < 0:
        raise ValueError(f"the Zipf exponent alpha must be >= 0, got {alpha}")
    ranks = torch.arange(1, num_prototypes + 1, dtype=torch.float64, device=device)
    weights = ranks.pow(-float(alpha))
    return (weights / weights.sum()).to(torch.float32)


@torch.no_grad()
def _build_kernel(out: torch.Tensor, logits: torch.Tensor, log_col: torch.Tensor | None) -> torch.Tensor:
    """out <- exp(logits + log_col - rowmax) in float32 (entries in (0, 1]); returns the row maxima [n, 1]."""
    if log_col is not None:
        torch.add(logits, log_col, out=out)
        row_max = out.amax(dim=1, keepdim=True)
    else:
        row_max = logits.amax(dim=1, keepdim=True).float()
    if not torch.isfinite(row_max).all():
        bad = int((~torch.isfinite(row_max)).nonzero()[0, 0])
        raise ValueError(f"logits row {bad} (within its cloud) has no finite value (NaN, +inf or all -inf)")
    # one pass writes the shifted logits (an up-cast copy, then a subtraction, would be two)
    torch.sub(out if log_col is not None else logits, row_max, out=out).exp_()
    return row_max


@torch.no_grad()
def _column_mass(g: torch.Tensor, weights: torch.Tensor, block_rows: int = 128) -> torch.Tensor:
    """weights^T G per cloud: [S, K] for row weights [N, S] (u on the cloud's rows, 0 elsewhere), accumulated
    in short fp32 runs added up in float64.

    One long fp32 mat-vec accumulates N terms in sequence (relative error ~ sqrt(N) eps, ~3e-6 at N = 2000),
    which is what limits agreement with the float64 algorithm over many iterations; 128-row blocks keep the
    error at the 1e-7 level. The blocks go through one batched product ([N/128, S, K] fp32 partial sums, then
    a float64 sum): a Python loop over blocks costs the same on a CPU but is launch-bound on a GPU (7,800 tiny
    kernels per iteration at N = 1M).
    """
    n, k = g.shape
    num_blocks = n // block_rows
    full = num_blocks * block_rows
    partial = torch.bmm(weights[:full].view(num_blocks, block_rows, weights.shape[1]).transpose(1, 2),
                        g[:full].view(num_blocks, block_rows, k))
    mass = partial.sum(dim=0, dtype=torch.float64)
    if full < n:
        mass += weights[full:].t() @ g[full:]
    return mass.float()


@torch.no_grad()
def _log_column_mass(logits: torch.Tensor, log_col: torch.Tensor | None, row_max: torch.Tensor,
                     u: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """log sum_i u_i G_ik for the given columns, in the log domain (for columns whose fp32 mass underflowed)."""
    shifted = logits.index_select(1, columns).float() - row_max + u.log().unsqueeze(1)
    if log_col is not None:
        shifted += log_col[columns]
    return torch.logsumexp(shifted, dim=0)


@torch.no_grad()
def _sinkhorn_scalings(logits: torch.Tensor, prior: torch.Tensor, num_iters: int, clouds: SegmentRows,
                       all_reduce: AllReduce | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the iterations on every cloud at once. Returns (G, u, V [S, K]) with F = diag(u) G diag(V[s]) on the
    rows of cloud s."""
    if num_iters < 1:
        raise ValueError(f"num_iters must be >= 1, got {num_iters}")
    log_prior = prior.log()
    kernel = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    row_max = _build_kernel(kernel, logits, None)
    log_col = None  # [S, K] column potentials absorbed into G so far (rows of cloud s carry log_col[s])
    v = None        # [S, K] column scalings; None = all ones
    # Rows are scaled to sum 1/n rather than 1: the same result (global factors cancel in every
    # normalisation) but the scalings then keep a fixed gauge instead of growing n-fold per iteration.
    num_rows = clouds.counts.to(torch.float32)
    if all_reduce is not None:
        num_rows = all_reduce(num_rows)
    onehot = clouds.onehot(torch.float32)
    ids = clouds.ids
    empty = (clouds.counts == 0)[:, None]
    for _ in range(num_iters):
        # G v on each row with its cloud's v: [N, S] products, then the row's own column
        row_mass = kernel.sum(dim=1) if v is None else (kernel @ v.t()).gather(1, ids[:, None]).squeeze(1)
        u = torch.reciprocal(row_mass * num_rows[ids])
        col_mass = _column_mass(kernel, onehot * u[:, None])
        if all_reduce is not None:
            # Across ranks a column cannot be rescued consistently: an underflowed one keeps zero mass.
            col_mass = all_reduce(col_mass).clamp_min(torch.finfo(torch.float32).tiny)
            v = (log_prior - col_mass.log()).exp().masked_fill_(empty, 1.0)
            continue
        log_v = (log_prior - col_mass.log()).masked_fill_(empty, 0.0)
        dead = (col_mass < _DEAD_COLUMN_MASS) & ~empty
        span = log_v.amax(dim=1) - log_v.amin(dim=1)
        rare = torch.stack([dead.any(), (span > _ABSORB_LOG_RANGE).any()]).tolist()  # one read for both checks
        if rare[0]:
            for s, (start, stop) in enumerate(clouds.bounds):
                cols = dead[s].nonzero().squeeze(1)
                if cols.numel():
                    rows = slice(start, stop)
                    log_v[s, cols] = log_prior[cols] - _log_column_mass(
                        logits[rows], None if log_col is None else log_col[s], row_max[rows], u[rows], cols)
            span = log_v.amax(dim=1) - log_v.amin(dim=1)
            rare[1] = bool((span > _ABSORB_LOG_RANGE).any())
        v = log_v.exp()
        if rare[1]:
            # Absorb, per cloud whose scalings span too much: G <- exp(L + log_col + log_v - new rowmax); F is
            # unchanged when u absorbs the row shift.
            if log_col is None:
                log_col = torch.zeros_like(log_v)
            for s in (span > _ABSORB_LOG_RANGE).nonzero().squeeze(1).tolist():
                start, stop = clouds.bounds[s]
                log_col[s] += log_v[s]
                new_row_max = _build_kernel(kernel[start:stop], logits[start:stop], log_col[s])
                u[start:stop] *= torch.exp(new_row_max - row_max[start:stop]).squeeze(1)
                row_max[start:stop] = new_row_max
                v[s] = 1.0
    if v is None:
        v = torch.ones((clouds.num, kernel.shape[1]), dtype=torch.float32, device=kernel.device)
    return kernel, u, v


@torch.no_grad()
def zipf_sinkhorn(logits: torch.Tensor, alpha: float, num_iters: int = 3,
                  segments: torch.Tensor | None = None, all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Algorithm 1: the Zipf-regularised teacher softmap S~_T [N, K] for teacher logits (cosine / tau_T).

    Columns sum to 1 within each point cloud (`segments`: offsets or sorted batch ids; None = one cloud).
    alpha = 0 is the uniform Sinkhorn-Knopp. Returns float32, detached. `all_reduce` (optional) sums the
    per-prototype column masses across processes; use it only when one cloud's rows are split across ranks.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, K], got shape {tuple(logits.shape)}")
    prior = zipf_prior(logits.shape[1], alpha, device=logits.device)
    clouds = segment_rows(logits.shape[0], segments, logits.device)
    kernel, u, _ = _sinkhorn_scalings(logits, prior, num_iters, clouds, all_reduce)
    # Final column normalisation: S~ = diag(u) G / colsum (v cancels). Exact sums, so columns sum to 1.
    kernel.mul_(u.unsqueeze(1))
    mass = _column_mass(kernel, clouds.onehot(torch.float32))
    if all_reduce is not None:
        mass = all_reduce(mass)
    inverse = mass.reciprocal_()
    clouds.apply_per_cloud_(kernel, 0, inverse, "mul")
    return kernel


@torch.no_grad()
def sinkhorn_point_assignments(logits: torch.Tensor, alpha: float = 0.0, num_iters: int = 3,
                               segments: torch.Tensor | None = None,
                               all_reduce: AllReduce | None = None) -> torch.Tensor:
    """Online-clustering targets (SwAV / Sonata style): the same transport iterations, but the result is
    normalised over prototypes for each point (rows sum to 1) instead of over points for each prototype."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, K], got shape {tuple(logits.shape)}")
    prior = zipf_prior(logits.shape[1], alpha, device=logits.device)
    clouds = segment_rows(logits.shape[0], segments, logits.device)
    kernel, _, v = _sinkhorn_scalings(logits, prior, num_iters, clouds, all_reduce)
    clouds.apply_per_cloud_(kernel, 0, v, "mul")
    kernel.div_(kernel.sum(dim=1, keepdim=True))
    return kernel
