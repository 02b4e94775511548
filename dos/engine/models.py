"""Building backbones from the `model` config section, and moving weights between runs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dos.cli import DosError
from dos.engine.common import ModelConfig
from dos.utils.io import load_torch


def build_backbone(config: ModelConfig, in_channels: int, enc_mode: bool) -> nn.Module:
    """PTv3 or SPUNet from `config`; `enc_mode` (encoder only, no decoder) is set by the caller for both.
    An unknown model config or override key, or an inconsistent architecture, is a DosError."""
    import inspect

    if config.backbone == "ptv3":
        from dos.models.ptv3 import PointTransformerV3 as network, ptv3_from_config as build
    else:
        from dos.models.spunet import SPUNet as network, spunet_from_config as build
    accepted = set(inspect.signature(network).parameters) - {"in_channels", "enc_mode"}
    unknown = sorted(set(config.overrides) - accepted)
    if unknown:
        raise DosError(f"model.overrides: unknown key(s) {unknown} for {config.backbone}; known: {sorted(accepted)}")
    try:
        return build(config.config, in_channels=in_channels, enc_mode=enc_mode, **config.overrides)
    except FileNotFoundError as error:
        raise DosError(f"model.config {config.config!r}: {error}") from None
    except (TypeError, ValueError) as error:
        raise DosError(f"model (config {config.config!r}, overrides {config.overrides}): {error}") from None


def blocks_per_stage(backbone: nn.Module) -> list[int] | None:
    """Encoder blocks per stage, for layer-wise lr decay; None for backbones without PTv3's `enc_stages`
    (SPUNet): the optimizer then gives every parameter the same lr (`optim.layer_decay` has no effect)."""
    stages = getattr(backbone, "enc_stages", None)
    return [len(stage) for stage in stages] if stages is not None else None


def warn_if_layer_decay_ignored(backbone: nn.Module, layer_decay: float, label: str) -> None:
    """Say so when a config asks for layer-wise lr decay on a backbone that has no PTv3 block structure."""
    if layer_decay < 1.0 and blocks_per_stage(backbone) is None:
        print(f"[{label}] note: optim.layer_decay={layer_decay} applies to PTv3 encoders only; "
              f"{type(backbone).__name__} trains every layer at the same lr", flush=True)


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
    state = load_torch(path, "pretrained encoder")
    if "model" in state:  # a full pretraining checkpoint
        prefix = f"{which}.encoder.backbone."
        state = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    elif which in state:
        state = state[which]
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches: another width / config than the pretrained one
        raise DosError(f"{path}: weights do not fit this backbone (wrong model config?): {error}") from None
    if unexpected:
        raise DosError(f"{path}: weights do not fit this backbone (unexpected keys {unexpected[:5]}...)")
    # decoders: PTv3's dec_stages / unpools, SPUNet's up / dec
    encoder_missing = [k for k in missing if not k.startswith(("dec", "unpool", "up."))]
    if encoder_missing:
        raise DosError(f"{path}: encoder weights missing for {encoder_missing[:5]}...: wrong model config?")
    return missing
