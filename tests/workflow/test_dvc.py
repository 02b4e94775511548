"""DVC round trip on a copy of the repository: `dvc repro` of the smoke stage, `dvc push` to the default
remote (.dvc/config: ../dvc-remote beside the repository, here a temporary folder), outputs and cache
deleted, `dvc pull` restores the same bytes, DVC sees the stage as up to date, and after `snakemake --touch`
so does Snakemake.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.workflow._helpers import BIN, copy_tree, environment, run, tree_hashes

STAGE = "reproduce_smoke"
OUTPUTS = ("data/smoke/synthetic", "reports/smoke")  # the stage's outs in dvc.yaml


def test_dvc_repro_push_pull_round_trip(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: DVC needs a git repository")
    if not (BIN / "dvc").exists():
        pytest.skip("dvc is not installed in this environment: pip install -e '.[workflow]'")
    # A fresh clone, made from the working tree (uncommitted work included): <tmp>/repo, its remote <tmp>/dvc-remote.
    repo = copy_tree(tmp_path / "repo")
    # `dos reproduce` runs the DAG of the checkout its `dos` package comes from: make that this copy.
    env = environment(PYTHONPATH=str(repo))
    dvc = str(BIN / "dvc")
    git = ["git", "-c", "user.name=dos-test", "-c", "user.email=dos-test@localhost", "-c", "init.defaultBranch=main"]
    run([*git, "init", "-q"], cwd=repo, env=env, timeout=60)
    run([*git, "add", "-A"], cwd=repo, env=env, timeout=60)
    run([*git, "commit", "-q", "-m", "snapshot of the working tree"], cwd=repo, env=env, timeout=60)

    run([dvc, "repro", STAGE], cwd=repo, env=env, timeout=300)
    produced = tree_hashes(repo, *OUTPUTS)
    assert any(name.endswith("manifest.json") for name in produced), sorted(produced)
    assert (repo / "dvc.lock").is_file()

    run([dvc, "push", STAGE], cwd=repo, env=env, timeout=120)
    assert (tmp_path / "dvc-remote").is_dir(), "the default remote is not ../dvc-remote beside the repository"

    for output in OUTPUTS:
        shutil.rmtree(repo / output)
    shutil.rmtree(repo / ".dvc" / "cache")
    status = run([dvc, "status", STAGE], cwd=repo, env=env, timeout=120).stdout
    assert "changed outs" in status and "not in cache" in status, status

    run([dvc, "pull", STAGE], cwd=repo, env=env, timeout=120)
    assert tree_hashes(repo, *OUTPUTS) == produced
    status = run([dvc, "status", STAGE], cwd=repo, env=env, timeout=120).stdout
    assert "up to date" in status, status

    # Pulled files get new mtimes, in no particular order, so Snakemake may see an input newer than its output.
    # `snakemake --touch` puts the mtimes back in DAG order without running anything; then nothing is to be done.
    snakemake = [str(BIN / "snakemake"), "--config", "scale=smoke"]
    run([*snakemake, "--touch"], cwd=repo, env=env, timeout=120)
    dry_run = run([*snakemake, "--dry-run"], cwd=repo, env=env, timeout=120)
    assert "Nothing to be done" in dry_run.stdout + dry_run.stderr, dry_run.stdout[-3000:]
    assert tree_hashes(repo, *OUTPUTS) == produced
