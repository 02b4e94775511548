"""Fake runs for the report tests: metrics.json files and a cells spec, written under a tmp folder."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_metrics(path: Path, **metrics: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return str(path)


def write_spec(path: Path, table: int, scale: str, cells: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"table": table, "scale": scale, "cells": cells}, sort_keys=False))
    return path


def table5_spec(root: Path, scale: str = "mini") -> Path:
    """Table 5 with one cell over 3 seeds (mIoU 60, 62, 67 %) and one cell with one seed (macc 80 %)."""
    runs = [write_metrics(root / f"runs/softmax/seed{s}/metrics.json", miou=v, macc=0.8, allacc=0.9)
            for s, v in enumerate([0.60, 0.62, 0.67])]
    cells = [
        {"block": "training target", "row": "softmax (ours)", "column": "nuScenes", "metric": "miou", "runs": runs},
        {"block": "training target", "row": "clustering", "column": "nuScenes", "metric": "macc", "runs": runs[:1]},
    ]
    return write_spec(root / "table5.yaml", 5, scale, cells)
