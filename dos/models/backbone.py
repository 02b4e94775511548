"""The backbone contract: what every backbone (PTv3, SPUNet) returns and exposes to the engine.

A backbone is an `nn.Module` called as `backbone(point, ...) -> BackboneOutput`, with
- `enc_channels`: the width of every encoder stage, finest first (what `upcast` concatenates);
- `out_channels`: the width of the decoder output (encoder-decoder mode);
- `enc_mode`: True when it was built without its decoder;
- `layer_ids() -> LayerIds | None`: the depth of each encoder parameter for layer-wise lr decay, or None when
  the backbone has no block structure for it (every parameter then gets the same lr).
The engine reads nothing else of a backbone: no parameter names, no attribute paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor, nn

from dos.batching import take_rows
from dos.models.point import Point


@dataclass
class BackboneOutput:
    """stages: encoder output per stage (finest first; stage s > 0 carries pooling_inverse/parent).
    decoded: the full-resolution decoder output (encoder-decoder mode only), same points as stages[0].
    neighbour_maps: the submanifold map of each stage's voxels, which a pass over a subset of them reuses
    (PTv3; empty for backbones that do not offer it)."""

    stages: list[Point]
    decoded: Point | None = None
    neighbour_maps: list = field(default_factory=list)


def upcast(stage_outputs: Sequence[Point], target_stage: int) -> Tensor:
    """Features at stage `target_stage`'s points: its own, then every coarser stage's mapped back through
    the pooling inverses, concatenated in that order (target, target+1, ..., coarsest)."""
    feat = stage_outputs[-1].feat
    for s in range(len(stage_outputs) - 1, target_stage, -1):
        feat = torch.cat([stage_outputs[s - 1].feat, take_rows(feat, stage_outputs[s].pooling_inverse)], dim=1)
    return feat


@dataclass(frozen=True)
class LayerIds:
    """Encoder depth of parameters for layer-wise lr decay: `of[id(parameter)]` in 0..num_layers - 1 (the stem
    is 0). A parameter not listed (decoder, heads, prototypes, mask token) is the top layer, `num_layers`."""

    of: dict[int, int]
    num_layers: int

    @classmethod
    def from_modules(cls, layers: Sequence[tuple[int, nn.Module]], num_layers: int) -> "LayerIds":
        return cls({id(p): layer for layer, module in layers for p in module.parameters()}, num_layers)
