"""No stale number through the workflow: a job re-run because its params changed starts its run afresh.

On 7392490, Snakemake deleted encoder.pt of a job whose variant had changed and kept checkpoint.pt, so the
re-run "resumed" the old run and wrote its weights under the new settings.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from tests.workflow._helpers import copy_tree, environment, run, snakemake

TARGET = "runs/smoke/pretrain/ptv3/nuscenes/{}/seed0/encoder.pt"


def _variants(path: Path, **recipes: list[str]) -> Path:
    path.write_text(yaml.safe_dump({"variants": {name: {"set": recipe} for name, recipe in recipes.items()}}))
    return path


def _student(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["student"]


def test_editing_a_variant_reruns_its_job_from_scratch(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path / "repo")
    env = environment(OMP_NUM_THREADS="1")
    old, new = ["objective.zipf_alpha=0.0"], ["objective.zipf_alpha=2.0"]
    first = _variants(tmp_path / "first.yaml", edited=old, reference=new)
    run(snakemake("--cores", "2", TARGET.format("edited"), TARGET.format("reference"), "--configfile",
                  "config/config.yaml", str(first), "--config", "scale=smoke"), cwd=repo, env=env, timeout=900)
    before = _student(repo / TARGET.format("edited"))
    reference = _student(repo / TARGET.format("reference"))
    assert any(not torch.equal(before[k], reference[k]) for k in before)  # the two recipes differ
    edited = _variants(tmp_path / "edited.yaml", edited=new, reference=new)
    run(snakemake("--cores", "2", TARGET.format("edited"), "--configfile", "config/config.yaml", str(edited),
                  "--config", "scale=smoke"), cwd=repo, env=env, timeout=900)
    log = (repo / "logs/smoke/pretrain/ptv3/nuscenes/edited/seed0.log").read_text()
    assert "starting afresh" in log and "resuming" not in log, log[-3000:]
    after = _student(repo / TARGET.format("edited"))
    assert after.keys() == reference.keys() and all(torch.equal(after[k], reference[k]) for k in after)
