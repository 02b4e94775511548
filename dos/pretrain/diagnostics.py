"""Collapse diagnostics of self-distillation, and the guard that acts on them.

A softmap KL is zero for any constant embedding, so nothing in the loss forbids collapse; these statistics
show it. `DOSPretrainer.forward(..., diagnostics=True)` adds them to a step's statistics (on logged steps
only: they cost an SVD and a softmap), and `history.csv` records them:

- `balanced_usage_entropy` (every step; the guarded usage statistic): entropy, in nats, of how often each
  prototype is the argmax of a *balanced* assignment of the teacher logits over the supervised units: the
  uniform Sinkhorn plan (each prototype the same mass) of the whole batch, normalised over prototypes for each
  point (`balanced_usage`); `balanced_usage_fraction` divides it by ln K. About 1 is every prototype the best match
  of some points; 0 is one prototype for everything, which is what identical embeddings give (every row of the
  plan is the same). It measures all targets on one scale, whatever prior the run trains with.
- `assignment_entropy` / `assignment_entropy_fraction` (every step; recorded, not guarded): the same for the
  transport plan of the run's own target (its (Zipf-)Sinkhorn), the fraction relative to the prior's entropy
  (`assignment_usage`). Under a Zipf prior, rows of the plan that are softer than the prior (teacher logits
  that tell prototypes apart by less than the prior's ln(w_1 / w_k)) send their argmax to the head prototypes:
  at alpha 1.3 the statistic falls to a few hundredths of the prior's entropy in healthy runs, and already
  reads 0.48 at step 0 (reports/mini/calibration.md §13a). It was the guard's statistic for one round.
- `prototype_entropy` (every step; recorded, not guarded): the same entropy for the argmax of the raw teacher
  logits. A softmap loss normalises each prototype over the points, so it cannot see a per-prototype offset of
  the logits, and a shared component of the embeddings is nearly such an offset: the raw argmax of a softmap
  run can pile onto one prototype while its targets do not change. A Sinkhorn plan is invariant to those
  offsets (exactly at convergence), which is why the guard reads a plan.
- `effective_rank`: the effective rank of the teacher embeddings (RankMe, Garrido et al. 2023: exp of the
  entropy of the normalised singular values). 1 is every embedding on one line; the head dimension is the
  most it can be.
- `softmap_entropy`: the entropy over points of each prototype's teacher softmap, averaged over prototypes and
  clouds, in nats; `softmap_entropy_fraction` divides it by ln(points of the cloud). A fraction of 1 is a
  softmap spread evenly over the cloud: what constant embeddings give.

The guard (`CollapseConfig`) flags a logged step whose balanced usage fraction or effective rank is below its
threshold. The defaults flag outright collapse (a balanced usage entropy under 0.15 ln K: about 1 nat, e ~ 2.7
prototypes in use, for 1024 prototypes; or embeddings spanning fewer than 2 directions).
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
    min_usage_fraction: float = 0.15    # balanced usage entropy / ln K (1 = every prototype some points' best match)
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


def _plan_usage(logits: torch.Tensor, alpha: float, num_iters: int, segments: torch.Tensor | None) -> torch.Tensor:
    """Usage entropy of the argmax of a Sinkhorn plan normalised over prototypes for each point (`segments`: one
    transport problem per cloud; None: one over all rows)."""
    plan = sinkhorn_point_assignments(logits, alpha, num_iters, segments)
    return _usage_entropy(plan.argmax(1), logits.shape[1])


@torch.no_grad()
def balanced_usage(logits: torch.Tensor, target: TargetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy in nats, entropy / ln K) of how often each prototype is the argmax of the uniform Sinkhorn plan
    of teacher logits [N, K], one transport problem over all the rows (the guarded statistic).

    One problem over the batch, whatever the target: identical embeddings give identical rows, hence one argmax
    for everything. (Solved per cloud, each cloud's uniform rows would break their ties its own way.) Rows that
    are nearly uniform have their argmax decided by small differences, which the balancing spreads over the
    prototypes: near-collapse onto one direction is the effective rank's to catch."""
    entropy = _plan_usage(logits, 0.0, target.sinkhorn_iters, None)
    return entropy, entropy / math.log(logits.shape[1]) if logits.shape[1] > 1 else entropy * 0.0


def _prior_entropy(num_prototypes: int, alpha: float, device: torch.device) -> torch.Tensor:
    prior = zipf_prior(num_prototypes, alpha, device=device).double()
    return (-torch.special.xlogy(prior, prior).sum()).clamp_min(torch.finfo(torch.float64).tiny)


def _own_plan_is_balanced(target: TargetConfig) -> bool:
    """The clustering target's uniform Sinkhorn is the balanced plan itself (same prior, one problem over the
    batch): its own-plan usage need not be solved twice."""
    return target.sinkhorn and target.target == "clustering" and target.zipf_alpha == 0


@torch.no_grad()
def assignment_usage(logits: torch.Tensor, target: TargetConfig, segments: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy in nats, entropy / the prior's entropy) of how often each prototype is the argmax of the run's
    own target plan (its (Zipf-)Sinkhorn; without Sinkhorn the raw logits and a uniform prior). Recorded, not
    guarded: see the module docstring."""
    num_prototypes = logits.shape[1]
    if target.sinkhorn:
        entropy = _plan_usage(logits, target.zipf_alpha, target.sinkhorn_iters,
                              segments if target.target == "softmap" else None)  # as the target's loss solves it
    else:
        entropy = prototype_usage(logits)
    alpha = target.zipf_alpha if target.sinkhorn else 0.0
    return entropy, entropy / _prior_entropy(num_prototypes, alpha, logits.device)


@torch.no_grad()
def usage_statistics(logits: torch.Tensor, target: TargetConfig, segments: torch.Tensor | None
                     ) -> dict[str, torch.Tensor]:
    """The three usage statistics of one step's teacher logits [N, K] (`segments`: the rows' clouds), as
    `history.csv` names them; a plan that two statistics share is solved once."""
    raw = prototype_usage(logits)
    balanced, balanced_fraction = balanced_usage(logits, target)
    if _own_plan_is_balanced(target):   # its prior is uniform: the fraction of ln K is the one already computed
        own, own_fraction = balanced, balanced_fraction
    else:
        own, own_fraction = assignment_usage(logits, target, segments)
    return {"prototype_entropy": raw, "prototype_perplexity_fraction": raw.exp() / logits.shape[1],
            "balanced_usage_entropy": balanced, "balanced_usage_fraction": balanced_fraction,
            "assignment_entropy": own, "assignment_entropy_fraction": own_fraction}


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
    fraction = row.get("balanced_usage_fraction")
    if fraction is not None and fraction < config.min_usage_fraction:
        entropy = row.get("balanced_usage_entropy", math.nan)
        problems.append(f"balanced prototype usage {fraction:.3f} of ln K ({entropy:.3f} nats) < "
                        f"diagnostics.min_usage_fraction {config.min_usage_fraction:g}")
    rank = row.get("effective_rank")
    if rank is not None and rank < config.min_effective_rank:
        problems.append(f"teacher embedding effective rank {rank:.3f} < diagnostics.min_effective_rank "
                        f"{config.min_effective_rank:g}")
    return problems
