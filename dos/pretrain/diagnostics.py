"""Collapse diagnostics of self-distillation, and the guard that acts on them.

A softmap KL is zero for any constant embedding, so nothing in the loss forbids collapse; these statistics
show it. `DOSPretrainer.forward(..., diagnostics=True)` adds them to a step's statistics (on logged steps
only: they cost an SVD and a softmap), and `history.csv` records them:

- `assignment_entropy` (every step; the guarded usage statistic): entropy, in nats, of how often each prototype
  is the argmax of the teacher's per-point assignments over the supervised units: the transport plan of the
  target's (Zipf-)Sinkhorn, normalised over prototypes for each point (`assignment_usage`).
  `assignment_entropy_fraction` divides it by the entropy of the prior the plan is held to (ln K for the
  uniform prior, less for a Zipf prior): about 1 is usage as spread as the prior asks, 0 is one prototype for
  everything.
- `prototype_entropy` (every step; recorded, not guarded): the same entropy for the argmax of the raw teacher
  logits. A softmap loss normalises each prototype over the points, so it cannot see a per-prototype offset of
  the logits, and a shared component of the embeddings is nearly such an offset: the raw argmax of a softmap
  run can pile onto one prototype while its targets do not change. The Sinkhorn plan is invariant to those
  offsets (exactly at convergence), which is why the guard reads the assignments.
- `effective_rank`: the effective rank of the teacher embeddings (RankMe, Garrido et al. 2023: exp of the
  entropy of the normalised singular values). 1 is every embedding on one line; the head dimension is the
  most it can be.
- `softmap_entropy`: the entropy over points of each prototype's teacher softmap, averaged over prototypes and
  clouds, in nats; `softmap_entropy_fraction` divides it by ln(points of the cloud). A fraction of 1 is a
  softmap spread evenly over the cloud: what constant embeddings give.

The guard (`CollapseConfig`) flags a logged step whose usage fraction or effective rank is below its threshold.
The defaults flag outright collapse (a usage entropy under 0.15 of the prior's: about 1 nat, e ~ 2.7 prototypes
in use, at the uniform prior over 1024 prototypes; or embeddings spanning fewer than 2 directions), not a merely
peaked usage: a Zipf prior concentrates usage on purpose, and the fraction is relative to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dos.config.ranges import check_ranges
from dos.objectives.segments import segment_rows
from dos.objectives.sinkhorn import sinkhorn_point_assignments, zipf_prior
from dos.objectives.targets import TargetConfig

ACTIONS = ("warn", "stop", "off")


@dataclass(frozen=True)
class CollapseConfig:
    min_usage_fraction: float = 0.15    # assignment usage entropy / the prior's entropy (1 = as spread as the prior)
    min_effective_rank: float = 2.0     # of the teacher embeddings (1 = all on one line)
    on_collapse: str = "warn"           # warn | stop (end the run with an error, keeping the last checkpoint) | off

    def __post_init__(self) -> None:
        if self.on_collapse not in ACTIONS:
            raise ValueError(f"on_collapse must be one of {ACTIONS}, got {self.on_collapse!r}")
        check_ranges(self, nonnegative=("min_usage_fraction", "min_effective_rank"))


@torch.no_grad()
def effective_rank(embed: torch.Tensor) -> torch.Tensor:
    """RankMe effective rank of the rows of `embed` [N, D]: exp(-sum p log p), p = sigma / sum(sigma)."""
    if embed.shape[0] == 0:
        return torch.zeros((), device=embed.device)
    sigma = torch.linalg.svdvals(embed.float())
    p = sigma / sigma.sum().clamp_min(torch.finfo(torch.float32).tiny)
    return torch.exp(-torch.special.xlogy(p, p).sum())


def _usage_entropy(winners: torch.Tensor, num_prototypes: int) -> torch.Tensor:
    usage = torch.bincount(winners, minlength=num_prototypes).double()
    p = usage / usage.sum().clamp_min(1)
    return -torch.special.xlogy(p, p).sum()


@torch.no_grad()
def prototype_usage(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of how often each prototype is the argmax of the raw logits [N, K] (`prototype_entropy`)."""
    return _usage_entropy(logits.argmax(1), logits.shape[1])


@torch.no_grad()
def assignment_usage(logits: torch.Tensor, target: TargetConfig, segments: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy in nats, entropy / the prior's entropy) of how often each prototype is the argmax of the teacher's
    per-point assignments, for teacher logits [N, K] of the supervised units (`segments`: their clouds).

    The assignments are the transport plan of the target's Sinkhorn, normalised over prototypes for each point:
    for the clustering target the target itself (one problem over the batch, as in its loss); for a softmap the
    plan of each cloud's (Zipf-)Sinkhorn, before its columns are normalised over the points. Without Sinkhorn
    they are the softmax over prototypes, and the prior is uniform.
    """
    num_prototypes = logits.shape[1]
    if target.sinkhorn:
        plan = sinkhorn_point_assignments(logits, target.zipf_alpha, target.sinkhorn_iters,
                                          segments if target.target == "softmap" else None)
        prior = zipf_prior(num_prototypes, target.zipf_alpha, device=logits.device).double()
    else:
        plan = logits
        prior = torch.full((num_prototypes,), 1.0 / num_prototypes, dtype=torch.float64, device=logits.device)
    entropy = _usage_entropy(plan.argmax(1), num_prototypes)
    prior_entropy = -torch.special.xlogy(prior, prior).sum()
    return entropy, entropy / prior_entropy.clamp_min(torch.finfo(torch.float64).tiny)


@torch.no_grad()
def softmap_entropy(logits: torch.Tensor, segments: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean entropy in nats, mean entropy / ln n) of each prototype's softmap over each cloud's points, for
    logits [N, K]; clouds of one point are left out of the fraction (ln 1 = 0)."""
    clouds = segment_rows(logits.shape[0], segments, logits.device)
    entropies, fractions = [], []
    for a, b in clouds.bounds:
        if b > a:
            log_s = torch.log_softmax(logits[a:b].float(), dim=0)
            h = -(log_s.exp() * log_s).sum(0).mean()
            entropies.append(h)
            if b - a > 1:
                fractions.append(h / math.log(b - a))
    zero = torch.zeros((), device=logits.device)
    return (torch.stack(entropies).mean() if entropies else zero,
            torch.stack(fractions).mean() if fractions else zero)


def collapse_problems(row: dict[str, float], config: CollapseConfig) -> list[str]:
    """What in this history row is below its threshold (empty: nothing, or the row carries no diagnostics)."""
    if config.on_collapse == "off":
        return []
    problems = []
    fraction = row.get("assignment_entropy_fraction")
    if fraction is not None and fraction < config.min_usage_fraction:
        entropy = row.get("assignment_entropy", math.nan)
        problems.append(f"prototype usage {fraction:.3f} of the prior's entropy ({entropy:.3f} nats) < "
                        f"diagnostics.min_usage_fraction {config.min_usage_fraction:g}")
    rank = row.get("effective_rank")
    if rank is not None and rank < config.min_effective_rank:
        problems.append(f"teacher embedding effective rank {rank:.3f} < diagnostics.min_effective_rank "
                        f"{config.min_effective_rank:g}")
    return problems
