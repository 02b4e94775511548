"""`dos reproduce`: the snakemake command line it runs (the DAG itself is tested in tests/workflow/)."""

from __future__ import annotations

import argparse
import csv
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


def _fake_claims(root, needed: list[str], verdicts: list[str] | None = None, first_stage: int = 10,
                 seeds: str = "10 11 12 13 14 15 16 17 18 19") -> None:
    from dos.report.claims import stein_method

    (root / "results" / "mini").mkdir(parents=True, exist_ok=True)
    with (root / "results" / "mini" / "claims.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "claim", "verdict", "seeds", "method", "seeds_needed"])
        for i, n in enumerate(needed):
            writer.writerow([5, f"c{i}", (verdicts or ["inconclusive"] * len(needed))[i], seeds,
                             stein_method(first_stage), n])


def test_resolve_runs_the_first_stage_then_the_seeds_the_claims_need(captured, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reproduce, "repository_root", lambda: tmp_path)
    # the largest seeds_needed of a decided claim (a "not run" or "reported" claim's is ignored)
    _fake_claims(tmp_path, ["13", "20", "", "40", "60"], ["reproduced", "inconclusive", "not run", "not run",
                                                         "reported"])
    assert reproduce.run(_args("--seeds", "10", "--first-seed", "10", "--resolve")) == 0
    assert [cmd[cmd.index("--config") + 1:] for cmd in captured] == [
        ["scale=mini", "num_seeds=10", "first_seed=10", "first_stage=10"],
        ["scale=mini", "num_seeds=20", "first_seed=10", "first_stage=10"]]


def test_resolve_stops_at_the_first_stage_when_it_is_enough(captured, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reproduce, "repository_root", lambda: tmp_path)
    _fake_claims(tmp_path, ["10", "8"], seeds="0 1 2 3 4 5 6 7 8 9")
    assert reproduce.run(_args("--seeds", "10", "--resolve")) == 0
    assert len(captured) == 1


def test_resolve_refuses_a_claims_table_of_another_run(captured, tmp_path, monkeypatch) -> None:
    """A claims.csv the first stage did not write (other seeds, or t-intervals whose seeds_needed is a
    forecast) must not size the second stage."""
    monkeypatch.setattr(reproduce, "repository_root", lambda: tmp_path)
    _fake_claims(tmp_path, ["20"], seeds="0 1 2 3 4 5 6 7 8 9")          # seeds 0-9, the run asked for 10-19
    with pytest.raises(DosError, match="not this run's claims table"):
        reproduce.run(_args("--seeds", "10", "--first-seed", "10", "--resolve"))
    _fake_claims(tmp_path, ["20"], first_stage=5)                          # a first stage of 5, not 10
    with pytest.raises(DosError, match="not this run's claims table"):
        reproduce.run(_args("--seeds", "10", "--first-seed", "10", "--resolve"))
    assert len(captured) == 2  # two first stages ran; no second


def test_resolve_needs_a_first_stage_and_its_claims(captured, tmp_path, monkeypatch) -> None:
    with pytest.raises(DosError, match="--resolve: give the first stage"):
        reproduce.run(_args("--resolve"))
    with pytest.raises(DosError, match="--first-stage 5"):
        reproduce.run(_args("--seeds", "3", "--first-stage", "5"))
    assert captured == []
    monkeypatch.setattr(reproduce, "repository_root", lambda: tmp_path)
    with pytest.raises(DosError, match="claims.csv: not written by the first stage"):
        reproduce.run(_args("--seeds", "4", "--resolve"))
    assert len(captured) == 1  # the first stage ran; nothing after it
