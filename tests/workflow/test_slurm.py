"""The Slurm profile runs the DAG on a real Slurm cluster and gives the same files as a local run.

Needs a running cluster: `sudo scripts/slurm/start_local_cluster.sh` starts a single-node one (CI does this
before `make test`). Without one the test is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.workflow._helpers import BIN, copy_tree, environment, run, tree_hashes

# The deterministic synthetic benchmark at the smoke scale: one job of a few seconds.
TARGET = "data/smoke/synthetic/manifest.json"
GENERATED = "data/smoke/synthetic"


def slurm_unavailable() -> str | None:
    """Why Slurm cannot be used here, or None when a cluster answers with a usable node."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed (no sinfo/sbatch): run `sudo scripts/slurm/start_local_cluster.sh`"
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    if not Path(conf).exists():  # sinfo would then search DNS for a controller, which takes a minute offline
        return f"no Slurm configuration at {conf}: run `sudo scripts/slurm/start_local_cluster.sh`"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "Slurm is not running: `sinfo` did not answer within 20 s"
    if result.returncode != 0:
        return f"Slurm is not running: `sinfo` failed: {result.stderr.strip()[:300]}"
    states = result.stdout.split()
    if not any(state in ("idle", "mix", "alloc") for state in states):
        return f"Slurm has no usable node (sinfo states: {states})"
    return None


def test_slurm_profile_matches_local_run(tmp_path: Path) -> None:
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    env = environment()
    snakemake = str(BIN / "snakemake")

    local = copy_tree(tmp_path / "local")
    run([snakemake, TARGET, "--config", "scale=smoke"], cwd=local, env=env, timeout=300)

    # exactly as the README says, from the root of a checkout: `--profile slurm` resolves to ./slurm
    cluster = copy_tree(tmp_path / "slurm")
    result = run([snakemake, "--profile", "slurm", TARGET, "--config", "scale=smoke"],
                 cwd=cluster, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert "submitted with SLURM jobid" in log, f"the job did not go through Slurm:\n{log[-3000:]}"

    expected, actual = tree_hashes(local, GENERATED), tree_hashes(cluster, GENERATED)
    assert expected, f"the local run generated nothing under {GENERATED}"
    assert actual == expected
