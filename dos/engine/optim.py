"""AdamW with layer-wise learning-rate decay, and the lr / weight-decay schedules (Sonata's recipe).

Layer ids follow the encoder's depth, as the backbone reports it (`layer_ids()`, dos/models/backbone.py; for
PTv3 the stem is layer 0, the b-th block of the whole encoder is layer b + 1, a pooling layer shares the id of
the first block after it); everything that is not the backbone encoder (decoder, heads, prototypes, mask token)
is the last layer. A parameter of layer l gets lr * decay^(L - l).
Biases and norm parameters get no weight decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from dos.config.ranges import check_ranges
from dos.models.backbone import LayerIds


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 0.004
    layer_decay: float = 0.9       # per encoder block; 1.0 disables layer-wise decay
    weight_decay_start: float = 0.04
    weight_decay_end: float = 0.2  # cosine schedule of the weight decay
    schedule: str = "onecycle"     # onecycle (linear warm-up then cosine to ~0) | cosine | constant
    warmup: float = 0.05           # fraction of the steps
    final_lr_fraction: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 3.0         # max global grad norm; 0 disables

    def __post_init__(self) -> None:
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be onecycle, cosine or constant, got {self.schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        check_ranges(self, nonnegative=("weight_decay_start", "weight_decay_end", "grad_clip"),
                     probability=("warmup", "final_lr_fraction", "betas"))


def _no_weight_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1 or name.endswith(".bias") or "mask_token" in name


def build_optimizer(model: nn.Module, config: OptimConfig, layers: LayerIds | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model`, grouped by (lr scale, weight decay on/off). `layers`
    (the encoder backbone's `layer_ids()`) gives the depth of its parameters; None = no layer-wise decay."""
    num_layers = layers.num_layers if layers is not None else 0
    groups: dict[tuple[float, bool], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = layers.of.get(id(param), num_layers) if layers is not None else num_layers
        scale = config.layer_decay ** (num_layers - depth)
        groups.setdefault((scale, _no_weight_decay(name, param)), []).append(param)
    param_groups = [{"params": params, "lr_scale": scale, "apply_wd": not no_wd, "lr": config.lr * scale,
                     "weight_decay": 0.0 if no_wd else config.weight_decay_start}
                    for (scale, no_wd), params in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))]
    # foreach: one multi-tensor kernel per update term instead of a dozen operators per parameter (CPU default
    # is the per-parameter loop)
    return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, fused=True)


def lr_at(config: OptimConfig, progress: float) -> float:
    """Base learning rate at a fraction `progress` of training."""
    if config.schedule == "constant":
        return config.lr
    final = config.lr * config.final_lr_fraction
    if config.schedule == "onecycle" and progress < config.warmup:
        return config.lr * max(progress / config.warmup, 1e-3)
    start = config.warmup if config.schedule == "onecycle" else 0.0
    t = min(max((progress - start) / max(1.0 - start, 1e-12), 0.0), 1.0)
    return final + (config.lr - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def weight_decay_at(config: OptimConfig, progress: float) -> float:
    t = min(max(progress, 0.0), 1.0)
    return config.weight_decay_end + (config.weight_decay_start - config.weight_decay_end) * 0.5 * (
        1.0 + math.cos(math.pi * t))


def apply_schedules(optimizer: torch.optim.Optimizer, config: OptimConfig, progress: float) -> tuple[float, float]:
    lr, wd = lr_at(config, progress), weight_decay_at(config, progress)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
        group["weight_decay"] = wd if group["apply_wd"] else 0.0
    return lr, wd


def clip_gradients(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most max_norm; returns the norm before (a tensor:
    no host read). As torch.nn.utils.clip_grad_norm_, except that on CPU, where torch's multi-tensor ops loop
    over the tensors one operator each, the norm is taken over the concatenated gradients (one operator
    instead of several hundred)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if grads[0].device.type != "cpu":
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
    total = torch.linalg.vector_norm(torch.cat([g.view(-1) if g.is_contiguous() else g.reshape(-1) for g in grads]))
    scale = max_norm / (total + 1e-6)
    if float(scale) < 1.0:  # (a host read is free on CPU) scaling by 1.0 would change nothing
        torch._foreach_mul_(grads, scale)
    return total


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, trainable: list[torch.Tensor],
                      grad_clip: float) -> dict[str, float]:
    """One optimisation step: backward, average gradients across ranks, clip the global norm, update."""
    from dos.engine import distributed

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(trainable)
    stats = {}
    if grad_clip > 0:
        stats["grad_norm"] = clip_gradients(trainable, grad_clip)
    optimizer.step()
    return stats
