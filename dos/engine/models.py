"""Building backbones from the `model` config section, and moving weights between runs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dos.cli import DosError
from dos.engine.common import ModelConfig


def build_backbone(config: ModelConfig, in_channels: int, enc_mode: bool) -> nn.Module:
    if config.backbone == "ptv3":
        from dos.models.ptv3 import ptv3_from_config

        return ptv3_from_config(config.config, in_channels=in_channels, enc_mode=enc_mode, **config.overrides)
    from dos.models.spunet import spunet_from_config

    return spunet_from_config(config.config, in_channels=in_channels, **config.overrides)


def blocks_per_stage(backbone: nn.Module) -> list[int] | None:
    """Encoder blocks per stage, for layer-wise lr decay (None for backbones without that structure)."""
    stages = getattr(backbone, "enc_stages", None)
    return [len(stage) for stage in stages] if stages is not None else None


def load_pretrained_backbone(backbone: nn.Module, path: str | Path, which: str = "teacher") -> list[str]:
    """Load a `dos pretrain` run's encoder weights (the EMA teacher by default) into `backbone`.

    Accepts the run folder, its `encoder.pt`, or a `checkpoint.pt`. Returns the backbone keys left at their
    initial values (e.g. a decoder absent from a pretrained encoder); unexpected keys are an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "encoder.pt"
    if not path.is_file():
        raise DosError(f"{path}: pretrained weights not found (expected a dos pretrain run folder or encoder.pt)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "model" in state:  # a full pretraining checkpoint
        prefix = f"{which}.encoder.backbone."
        state = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    elif which in state:
        state = state[which]
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if unexpected:
        raise DosError(f"{path}: weights do not fit this backbone (unexpected keys {unexpected[:5]}...)")
    encoder_missing = [k for k in missing if not k.startswith(("dec", "unpool"))]
    if encoder_missing:
        raise DosError(f"{path}: encoder weights missing for {encoder_missing[:5]}...: wrong model config?")
    return missing
