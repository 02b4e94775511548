"""The training budget behind a table cell, read from its runs' records, so that every table says what it cost.

A cell's run is a probe / finetune (its metrics.json); its provenance.json says how it trained (solver, steps,
epochs of how many scenes) and its config.yaml which encoder it started from (`head.pretrained`), whose
provenance says how long that encoder was pretrained. Runs without these records (hand-made fixtures) have no
budget, and nothing is said.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pretrained_folder(run: Path, base: Path) -> Path | None:
    """The run folder of the encoder `run` (a probe / finetune folder) started from (None: none)."""
    try:
        config = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    pretrained = ((config or {}).get("head") or {}).get("pretrained") if isinstance(config, dict) else None
    if not pretrained:
        return None
    folder = Path(pretrained)
    folder = folder if folder.is_absolute() else base / folder
    return folder.parent if folder.suffix == ".pt" else folder


def _steps(record: dict[str, Any]) -> str:
    text = f"{record['total_steps']} steps"
    if "epochs" in record and "train_scenes" in record:
        text += f" = {record['epochs']:g} epochs of {record['train_scenes']} scenes, batch {record['batch_size']}"
    return text


def run_budget(metrics_path: str | Path, base: str | Path = ".") -> str:
    """e.g. 'pretraining 450 steps = 50 epochs of 36 scenes, batch 4; probe solved to convergence (lbfgs)'."""
    run, base = Path(metrics_path).parent, Path(base)
    own = _json(run / "provenance.json")
    if "total_steps" not in own:
        return ""
    parts = []
    folder = pretrained_folder(run, base)
    if folder is not None:
        pretrained = _json(folder / "provenance.json")
        if "total_steps" in pretrained:
            parts.append(f"pretraining {_steps(pretrained)}")
    mode = own.get("mode", "run")
    if own.get("solver") == "lbfgs":
        parts.append(f"{mode} solved to convergence (lbfgs, {own.get('train_scenes', '?')} scenes)")
    else:
        parts.append(f"{mode} {_steps(own)}")
    return "; ".join(parts)


def budget_note(runs: list[str], base: str | Path = ".") -> str:
    """The distinct budgets of a cell's runs, as one note ('' when none is recorded)."""
    budgets = list(dict.fromkeys(b for b in (run_budget(Path(base) / r, base) for r in runs) if b))
    return ("budget: " + " / ".join(budgets)) if budgets else ""
