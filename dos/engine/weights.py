"""Encoder weights between runs: the one place that writes `encoder.pt` and the one that reads it back.

`encoder.pt` = {"student": backbone state, "teacher": backbone state, "model_config": the `model` section the
backbone was built from, "in_channels": its input width, ...extra}. `dos pretrain` writes the student and its
EMA teacher; `dos distill` (no EMA) writes the same weights under both names, so every reader can take either.
Readers accept a run folder, its encoder.pt, or a pretraining checkpoint.pt.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from dos.errors import DosError
from dos.utils.io import load_torch, save_torch

ENCODER_FILE = "encoder.pt"


def encoder_file(path: str | Path) -> Path:
    """The weights file of a run folder (its encoder.pt), or `path` itself when it is a file."""
    path = Path(path)
    return path / ENCODER_FILE if path.is_dir() else path


def export_encoder(path: Path, student: nn.Module, teacher: nn.Module | None, model_config: Any,
                   in_channels: int, **extra: Any) -> None:
    """Write `encoder.pt` (atomically): the student's and the teacher's backbone weights (the student's twice
    when there is no teacher), the model config section (a dataclass) and the input width."""
    state = student.state_dict()
    save_torch(path, {"student": state, "teacher": state if teacher is None else teacher.state_dict(),
                      "model_config": dataclasses.asdict(model_config), "in_channels": in_channels, **extra})


def pretrained_in_channels(path: str | Path) -> int | None:
    """The input width a weights file records (None when it records none, or is not a file yet)."""
    path = encoder_file(path)
    return load_torch(path, "pretrained encoder").get("in_channels") if path.is_file() else None


def load_pretrained_backbone(backbone: nn.Module, path: str | Path, which: str = "teacher") -> list[str]:
    """Load a run's encoder weights (the EMA teacher by default) into `backbone`.

    Accepts the run folder, its `encoder.pt`, or a `checkpoint.pt`. Returns the backbone keys left at their
    initial values (e.g. a decoder absent from a pretrained encoder); unexpected keys are an error.
    """
    path = encoder_file(path)
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
