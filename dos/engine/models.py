"""Building backbones from the `model` config section (weights between runs: dos/engine/weights.py)."""

from __future__ import annotations

from torch import nn

from dos.errors import DosError
from dos.engine.common import ModelConfig


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


def warn_if_layer_decay_ignored(backbone: nn.Module, layer_decay: float, label: str) -> None:
    """Say so when a config asks for layer-wise lr decay on a backbone without a block structure for it."""
    if layer_decay < 1.0 and backbone.layer_ids() is None:
        print(f"[{label}] note: optim.layer_decay={layer_decay} applies to PTv3 encoders only; "
              f"{type(backbone).__name__} trains every layer at the same lr", flush=True)
