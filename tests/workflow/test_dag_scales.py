"""One notion of scale, and which rules stay local (copies of the working tree):

- a runs/<scale>/... or results/<scale>/... target gets that scale's resources, threads and launcher, whatever
  the configured `scale` (they used to come from the configured one);
- results/tableN.* is the configured scale's table only: building another scale leaves it alone, switching the
  configured scale rebuilds it (it used to be a copy of whichever scale was built last);
- the cheap rules are `localrules` (never submitted to Slurm).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow._helpers import copy_tree, environment, run, snakemake

LOCAL = {"all", "all_tables", "table", "claims", "table_claims", "configured_table", "figure", "report", "report_full",
         "label_subsets", "synthetic_figures", "figure4", "figure5", "pca_figure", "detection_bev"}
SUBMITTED = {"bench_objective", "synthetic_benchmark", "pretrain", "distill", "probe", "finetune",
             "finetune_scratch", "probe_random", "transfer", "detect", "detect_scratch"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("dag_scales") / "repo")


def job_blocks(output: str) -> list[str]:
    """The job entries of a dry run's listing (`rule NAME:` up to its shell command)."""
    return [block for block in output.split("\n\n") if "rule " in block and "output:" in block]


def test_resources_follow_the_target_scale(tree: Path) -> None:
    paper_target = "runs/paper/pretrain/ptv3/nuscenes/dos/seed0/encoder.pt"
    out = run(snakemake("-n", "-p", paper_target, "--config", "scale=smoke"), cwd=tree, env=environment(),
              timeout=300).stdout
    (block,) = [b for b in job_blocks(out) if paper_target in b]
    assert "cpus_per_task=16" in block and "mem_mb=128000" in block and "gpu=2" in block, block
    assert "torchrun --standalone --nproc_per_node 2 -m dos pretrain" in block and "train.num_threads=8" in block
    smoke_target = "runs/smoke/probe/ptv3/nuscenes/full/nuscenes/dos/seed0/metrics.json"
    out = run(snakemake("-n", "-p", smoke_target, "--config", "scale=paper"), cwd=tree, env=environment(),
              timeout=300).stdout
    blocks = job_blocks(out)
    assert blocks and "torchrun" not in out
    for block in blocks:
        if "rule pretrain:" in block or "rule probe:" in block:
            assert "cpus_per_task=1," in block and "mem_mb=2000" in block and "gpu=0" in block, block
    # a table of another scale: its own seeds (paper: 3) and folders
    out = run(snakemake("-n", "-p", "results/paper/table5.csv", "--config", "scale=mini"), cwd=tree,
              env=environment(), timeout=300).stdout
    assert "--scale paper --runs-root runs/paper --seeds 0 1 2 " in out and "results/table5.csv" not in out
    assert "runs/mini/" not in out


def test_unscaled_tables_are_the_configured_scale(tmp_path: Path) -> None:
    """Real runs of the table rules, on a Table 5 template whose cells all need S3DIS (no synthetic stand-in: at
    smoke and mini the cells stay empty and no training job is needed)."""
    repo = copy_tree(tmp_path / "repo")
    path = repo / "workflow" / "tables" / "table5.yaml"
    template = yaml.safe_load(path.read_text())
    for cell in template["cells"]:
        cell["datasets"] = ["s3dis"]
    path.write_text(yaml.safe_dump(template))
    env = environment(PYTHONPATH=str(repo))

    def build(target: str, scale: str) -> str:
        return run(snakemake("--cores", "1", target, "--config", f"scale={scale}"), cwd=repo, env=env,
                   timeout=300).stdout

    def text(name: str) -> str:
        return (repo / name).read_text()

    build("results/table5.csv", "smoke")
    assert text("results/table5.csv") == text("results/smoke/table5.csv") and ",smoke," in text("results/table5.csv")
    for ext in ("md", "tex"):
        assert text(f"results/table5.{ext}") == text(f"results/smoke/table5.{ext}")
    build("results/mini/table5.csv", "smoke")  # another scale: results/table5.* stays the configured scale's
    assert ",mini," in text("results/mini/table5.csv") and text("results/table5.csv") == text("results/smoke/table5.csv")
    build("results/table5.csv", "mini")  # the configured scale changed: rebuilt from results/mini/
    assert text("results/table5.csv") == text("results/mini/table5.csv")
    out = run(snakemake("-n", "results/table5.csv", "--config", "scale=smoke"), cwd=repo, env=env, timeout=300)
    assert "configured_table" in out.stdout and "\ntable " not in out.stdout  # back to smoke: a copy, no rebuild


LIST_LOCALRULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(ResourceSettings(), ConfigSettings(config={"scale": sys.argv[1]}),
                            snakefile=Path("Snakefile"), workdir=Path.cwd())._workflow
    print(json.dumps({"rules": sorted(rule.name for rule in workflow.rules), "local": sorted(workflow._localrules)}))
"""


def test_cheap_rules_are_local(tree: Path) -> None:
    """Snakemake's own record of the `localrules:` directive (a dry run never says what would be local)."""
    out = subprocess.run([sys.executable, "-c", LIST_LOCALRULES, "paper"], cwd=tree, env=environment(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    listed = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(listed["rules"]) == LOCAL | SUBMITTED, listed["rules"]  # a new rule: decide where it runs
    assert set(listed["local"]) == LOCAL
