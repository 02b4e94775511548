"""A linear probe solved to convergence: multinomial logistic regression on cached frozen features.

Why: a probe trained by a few hundred stochastic steps samples its result (its seed, its batches and its stopping
point all move the score), so small differences between encoders drown in probe noise. Here the objective is
the mean cross-entropy over every labelled point of every training scene plus `l2 / 2 * |W|^2`: strictly convex,
so it has one minimum, which full-batch L-BFGS (strong-Wolfe line search, from zero) finds deterministically.
The result does not depend on the probe's seed at all; only the encoder and the data move it.

Features are standardised with the training set's per-channel mean and standard deviation first (conditioning;
the same for every encoder), and the standardisation is folded back into the returned weights, so the probe is
one `nn.Linear` on the raw features, as Sonata's.

Convergence is checked and recorded: the run is `converged` when the largest absolute gradient entry of the
objective falls below `tolerance`; otherwise it stops at `max_iter` iterations and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch


@dataclass
class ProbeFit:
    weight: torch.Tensor                 # (classes, channels), on the raw (unstandardised) features
    bias: torch.Tensor                   # (classes,)
    iterations: int
    evaluations: int                     # objective + gradient evaluations (line search included)
    loss: float                          # final objective (mean cross-entropy + l2 term)
    cross_entropy: float                 # final mean cross-entropy alone
    grad_max: float                      # largest absolute gradient entry at the end
    converged: bool
    points: int                          # labelled training points in the objective
    trace: list[dict] = field(default_factory=list)  # (iteration, loss, grad_max) after every chunk

    def record(self) -> dict:
        """The JSON-able convergence record (no tensors)."""
        return {k: v for k, v in asdict(self).items() if k not in ("weight", "bias")}


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, l2: float,
                     max_iter: int, tolerance: float, ignore_index: int = -1, chunk: int = 25) -> ProbeFit:
    """Minimise mean CE(features W^T + b, labels) + l2/2 |W|^2 over the points whose label is not `ignore_index`."""
    keep = labels != ignore_index
    x = features[keep].float()
    y = labels[keep].long()
    if x.shape[0] == 0:
        raise ValueError("the probe has no labelled training point")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels outside [0, {num_classes}) (ignore index {ignore_index})")
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mean) / std
    weight = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=chunk, history_size=20,
                                  tolerance_grad=tolerance, tolerance_change=0.0, line_search_fn="strong_wolfe")
    evaluations = 0

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        cross_entropy = torch.nn.functional.cross_entropy(torch.addmm(bias, x, weight.t()), y)
        return cross_entropy + 0.5 * l2 * weight.pow(2).sum(), cross_entropy

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        loss, _ = objective()
        loss.backward()
        return loss

    def state() -> tuple[float, float, float]:
        optimizer.zero_grad()
        loss, cross_entropy = objective()
        loss.backward()
        grad_max = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
        return float(loss.detach()), float(cross_entropy.detach()), grad_max

    iterations, trace = 0, []
    loss, cross_entropy, grad_max = state()
    while grad_max > tolerance and iterations < max_iter:
        before = optimizer.state[weight].get("n_iter", 0)
        optimizer.param_groups[0]["max_iter"] = min(chunk, max_iter - iterations)
        optimizer.step(closure)
        done = optimizer.state[weight].get("n_iter", 0) - before
        iterations += done
        loss, cross_entropy, grad_max = state()
        trace.append({"iteration": iterations, "loss": loss, "grad_max": grad_max})
        if done == 0:   # L-BFGS made no progress (its own tolerances): further calls change nothing
            break
    with torch.no_grad():
        raw_weight = weight / std
        raw_bias = bias - raw_weight @ mean
    return ProbeFit(weight=raw_weight.detach(), bias=raw_bias.detach(), iterations=iterations,
                    evaluations=evaluations, loss=loss, cross_entropy=cross_entropy, grad_max=grad_max,
                    converged=grad_max <= tolerance, points=int(x.shape[0]), trace=trace)
