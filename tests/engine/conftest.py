"""A smoke-size synthetic benchmark, generated once per test session, and tiny run settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "dos" / "config"


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    from dos.data.synthetic.benchmark import generate_benchmark

    out = tmp_path_factory.mktemp("synthetic")
    generate_benchmark(out, "smoke", 0)
    return out


def tiny_pretrain_overrides(data_root: Path, steps: int = 3, **extra: str) -> list[str]:
    values = {
        "data.format": "synthetic-lidar", "data.root": str(data_root / "synthetic-nuscenes"), "data.cache": "true",
        "model.config": "smoke", "model.supervision_stage": "1",
        "views.grid_size": "0.2", "views.max_points": "1500",
        "masking.block_size": "2.0", "distill.head_hidden": "32", "distill.head_dim": "16",
        "distill.num_prototypes": "32", "distill.cross_view_radius": "0.4",
        "train.batch_size": "2", "train.max_steps": str(steps), "train.checkpoint_every": "1",
        "train.log_every": "1", "train.num_workers": "0", "train.num_threads": "1",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def tiny_segmentation_overrides(data_root: Path, steps: int = 3, **extra: str) -> list[str]:
    values = {
        "data.format": "synthetic-lidar", "data.root": str(data_root / "synthetic-nuscenes"), "data.cache": "true",
        "model.config": "smoke", "head.grid_size": "0.2", "train.batch_size": "2", "train.max_steps": str(steps),
        "train.checkpoint_every": "1", "train.log_every": "1", "train.num_workers": "0", "train.num_threads": "1",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def dos_command(*args: str, overrides: list[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "dos", *args]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def run_dos(*args: str, overrides: list[str] = (), check: bool = True, env: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(dos_command(*args, overrides=overrides), capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {})}, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"dos {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out
