"""`dos reproduce`: the snakemake command line it runs (the DAG itself is tested in tests/workflow/)."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from dos import reproduce
from dos.errors import DosError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    reproduce.configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def captured(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(cmd, cwd, env):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    return calls


def test_default_runs_the_scales_own_seeds(captured) -> None:
    assert reproduce.run(_args()) == 0
    cmd = captured[0]
    assert cmd[-2:] == ["--config", "scale=mini"] and not any(part.startswith("num_seeds") for part in cmd)


def test_seeds_become_num_seeds_for_the_dag(captured) -> None:
    assert reproduce.run(_args("--scale", "smoke", "--seeds", "8", "results/table5.csv")) == 0
    cmd = captured[0]
    assert cmd[1] == "results/table5.csv"
    assert cmd[cmd.index("--config") + 1:] == ["scale=smoke", "num_seeds=8"]


def test_first_seed_is_passed_to_the_dag(captured) -> None:
    assert reproduce.run(_args("--seeds", "10", "--first-seed", "10")) == 0
    cmd = captured[0]
    assert cmd[cmd.index("--config") + 1:] == ["scale=mini", "num_seeds=10", "first_seed=10"]


def test_a_negative_first_seed_is_an_error_before_anything_runs(captured) -> None:
    with pytest.raises(DosError, match="--first-seed -1"):
        reproduce.run(_args("--first-seed", "-1"))
    assert captured == []


def test_zero_seeds_is_an_error_before_anything_runs(captured) -> None:
    with pytest.raises(DosError, match="--seeds 0"):
        reproduce.run(_args("--seeds", "0"))
    assert captured == []
