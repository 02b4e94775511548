"""Checkpoints: model, optimizer, step and every random state, written atomically (temporary name, rename).

A run resumed from a checkpoint continues bit-identically on CPU: the global torch / numpy / python RNG states
are restored, and the data order and augmentations are functions of (seed, epoch, step), not of a running RNG.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dos.utils.io import load_torch, save_torch


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    step: int, extra: dict[str, Any] | None = None) -> None:
    save_torch(path, {"model": model.state_dict(),
                      "optimizer": optimizer.state_dict() if optimizer is not None else None,
                      "step": step, "rng": rng_state(), "extra": extra or {}})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return load_torch(path, "checkpoint")
