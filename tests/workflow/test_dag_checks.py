"""What the DAG refuses before any job runs (dry runs on copies of the working tree):

- a seed listed twice (one run counted as two seeds: n_seeds 2, ± 0.0);
- a typo'd key in a pretraining variant or a scale's run_overrides (it used to pass `snakemake -n` and fail only
  when the job ran): one `dos config check` of every training job, cached;
- `dos` (or torchrun, for multi-process training) not on PATH (every job used to exit 127, the cause only in its
  log).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.workflow._helpers import BIN, REPO_ROOT, copy_tree, environment, run, snakemake


def fails(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run cmd, expecting it to fail; its output."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, f"`{' '.join(cmd)}` passed:\n{result.stdout[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("dag_checks") / "repo")


def extra_config(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_repeated_seed_is_refused(tree: Path, tmp_path: Path) -> None:
    extra = extra_config(tmp_path, {"scales": {"smoke": {"seeds": [0, 0]}}})
    out = fails(snakemake("-n", "--configfile", "config/config.yaml", extra, "--config", "scale=smoke"), tree,
                environment())
    assert "non-unique" in out and "seeds" in out, out[-3000:]


def test_typo_in_a_variant_or_run_overrides_stops_the_dag(tree: Path, tmp_path: Path) -> None:
    # a variant no table uses: still checked (a direct runs/... target can ask for it)
    extra = extra_config(tmp_path, {"variants": {"typo_variant": {"set": ["objective.zipf_alhpa=1.0"]}}})
    out = fails(snakemake("-n", "--configfile", "config/config.yaml", extra, "--config", "scale=smoke"), tree,
                environment())
    assert "variant typo_variant" in out and "objective.zipf_alhpa: unknown key" in out, out[-3000:]
    assert "Job stats" not in out  # no DAG was listed
    # a scale's run_overrides, used by the probes of every table
    config = yaml.safe_load((tree / "config" / "config.yaml").read_text())
    probe = config["scales"]["mini"]["run_overrides"]["probe"]
    extra = extra_config(tmp_path, {"scales": {"mini": {"run_overrides": {"probe": {
        "outdoor": [*probe["outdoor"], "head.grid_sise=0.1"]}}}}})
    out = fails(snakemake("-n", "results/table5.csv", "--configfile", "config/config.yaml", extra,
                          "--config", "scale=smoke"), tree, environment())
    assert "rule probe" in out and "runs/mini/probe/" in out and "head.grid_sise: unknown key" in out, out[-3000:]


def test_config_check_runs_once_per_configuration(tree: Path, tmp_path: Path) -> None:
    """A shim `dos` logs its calls: the second dry run of the same configuration skips the check's process."""
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    calls = tmp_path / "calls.txt"
    shim = shim_dir / "dos"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {BIN / "dos"} "$@"\n')
    shim.chmod(0o755)
    env = environment(PATH=os.pathsep.join([str(shim_dir), "/usr/bin", "/bin"]))
    extra = extra_config(tmp_path, {"variants": {"one_more": {"set": ["objective.zipf_alpha=0.5"]}}})
    for _ in range(2):
        run(snakemake("-n", "results/table5.csv", "--configfile", "config/config.yaml", extra,
                      "--config", "scale=smoke"), cwd=tree, env=env, timeout=300)
    assert calls.read_text().splitlines() == ["config check -"]


def test_dos_not_on_path_stops_before_any_job(tree: Path, tmp_path: Path) -> None:
    env = environment(PATH=os.pathsep.join(["/usr/bin", "/bin"]))
    out = fails(snakemake("-n", "results/table5.csv", "--config", "scale=smoke"), tree, env)
    assert "`dos` is not on PATH" in out and "Job stats" not in out, out[-3000:]
    # with `dos` found but not torchrun: the paper scale's pretraining runs 2 processes through torchrun
    only_dos = tmp_path / "bin"
    only_dos.mkdir()
    (only_dos / "dos").symlink_to(BIN / "dos")
    env = environment(PATH=os.pathsep.join([str(only_dos), "/usr/bin", "/bin"]))
    out = fails(snakemake("-n", "results/table5.csv", "--config", "scale=paper"), tree, env)
    assert "`torchrun` is not on PATH" in out and "pretrain jobs at scale paper" in out, out[-3000:]
    run(snakemake("-n", "results/table5.csv", "--config", "scale=smoke"), cwd=tree, env=env, timeout=300)


def test_config_check_command_reports_every_bad_job(tmp_path: Path) -> None:
    """`dos config check FILE`: one line per invalid job, exit 2; the valid ones say nothing."""
    jobs = [{"label": "good", "command": "pretrain", "config": "dos/config/pretrain/dos_outdoor.yaml",
             "overrides": ["seed=1"]},
            {"label": "bad probe", "command": "probe", "config": "dos/config/probe/lp_indoor.yaml",
             "overrides": ["head.grid_sise=0.1"]},
            {"label": "bad distill", "command": "distill", "config": "dos/config/distill/distill_outdoor.yaml",
             "overrides": ["student.backbone=spunet", "train.epocs=3"]}]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    result = subprocess.run([str(BIN / "dos"), "config", "check", str(path)], cwd=REPO_ROOT, env=environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("bad probe (dos probe): ") and "head.grid_sise" in lines[0]
    assert lines[1].startswith("bad distill (dos distill): ") and "train.epocs" in lines[1]
    assert "2 of 3 job configs are invalid" in result.stderr
    path.write_text(json.dumps(jobs[:1]))
    result = subprocess.run([str(BIN / "dos"), "config", "check", str(path)], cwd=REPO_ROOT, env=environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "1 job configs are valid" in result.stdout, result.stderr
