"""Collapse diagnostics of self-distillation, and the guard that acts on them.

A softmap KL is zero for any constant embedding, so nothing in the loss forbids collapse; these statistics
show it. `DOSPretrainer.forward(..., diagnostics=True)` adds them to a step's statistics (on logged steps
only: they cost an SVD and a softmap), and `history.csv` records them:

- `prototype_entropy` (every step): entropy, in nats, of how often each prototype is the teacher's argmax over
  the supervised units. ln K is uniform use; 0 is one prototype for everything.
- `effective_rank`: the effective rank of the teacher embeddings (RankMe, Garrido et al. 2023: exp of the
  entropy of the normalised singular values). 1 is every embedding on one line; the head dimension is the
  most it can be.
- `softmap_entropy`: the entropy over points of each prototype's teacher softmap, averaged over prototypes and
  clouds, in nats; `softmap_entropy_fraction` divides it by ln(points of the cloud). A fraction of 1 is a
  softmap spread evenly over the cloud: what constant embeddings give.

The guard (`CollapseConfig`) flags a logged step whose prototype entropy or effective rank is below its
threshold. The defaults flag outright collapse (fewer than e ~ 2.7 prototypes in use, or embeddings spanning
fewer than 2 directions), not a merely peaked usage: a Zipf prior concentrates usage on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dos.config.ranges import check_ranges
from dos.objectives.segments import segment_rows

ACTIONS = ("warn", "stop", "off")


@dataclass(frozen=True)
class CollapseConfig:
    min_prototype_entropy: float = 1.0  # nats (ln K = uniform use)
    min_effective_rank: float = 2.0     # of the teacher embeddings (1 = all on one line)
    on_collapse: str = "warn"           # warn | stop (end the run with an error, keeping the last checkpoint) | off

    def __post_init__(self) -> None:
        if self.on_collapse not in ACTIONS:
            raise ValueError(f"on_collapse must be one of {ACTIONS}, got {self.on_collapse!r}")
        check_ranges(self, nonnegative=("min_prototype_entropy", "min_effective_rank"))


@torch.no_grad()
def effective_rank(embed: torch.Tensor) -> torch.Tensor:
    """RankMe effective rank of the rows of `embed` [N, D]: exp(-sum p log p), p = sigma / sum(sigma)."""
    if embed.shape[0] == 0:
        return torch.zeros((), device=embed.device)
    sigma = torch.linalg.svdvals(embed.float())
    p = sigma / sigma.sum().clamp_min(torch.finfo(torch.float32).tiny)
    return torch.exp(-torch.special.xlogy(p, p).sum())


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
    entropy = row.get("prototype_entropy")
    if entropy is not None and entropy < config.min_prototype_entropy:
        problems.append(f"prototype usage entropy {entropy:.3f} nats < diagnostics.min_prototype_entropy "
                        f"{config.min_prototype_entropy:g}")
    rank = row.get("effective_rank")
    if rank is not None and rank < config.min_effective_rank:
        problems.append(f"teacher embedding effective rank {rank:.3f} < diagnostics.min_effective_rank "
                        f"{config.min_effective_rank:g}")
    return problems
