"""Table 4's CoLa column in the DAG (dry run, smoke scale): the multi-source coarse-label fine-tunings, their
zero-shot transfer to ParisLuco3D read with the same coarse classes, and the 5-shot fine-tuning."""

from __future__ import annotations

import re

import pytest

from tests.workflow._helpers import REPO_ROOT, copy_tree, environment, run, snakemake

COLA_FINETUNE = "runs/smoke/finetune/ptv3/cola/full/{}/seed0/metrics.json"


TARGETS = ["runs/smoke/transfer/parislucocola/finetune/ptv3/cola/full/scratch/seed0/metrics.json",
           "runs/smoke/transfer/parislucocola/finetune/ptv3/cola/full/nuskwa/dos/seed0/metrics.json",
           "runs/smoke/finetune/ptv3/parislucocola/shots_5/nuskwa/dos/seed0/metrics.json",
           "runs/smoke/transfer/parisluco/finetune/ptv3/nuscenes/full/scratch/seed0/metrics.json"]


def test_table4_names_the_cola_cells() -> None:
    from dos.report.tables import template_runs

    runs = template_runs(REPO_ROOT / "workflow" / "tables" / "table4.yaml", "runs/smoke", [0])
    assert set(TARGETS[:3]) <= set(runs) and len(runs) == 9


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> dict[str, str]:
    """{output: shell command} of the dry run of Table 4's CoLa cells (the runs: results/smoke/table4.* is
    committed, so the table itself would be up to date in a copy of the tree)."""
    tree = copy_tree(tmp_path_factory.mktemp("cola") / "repo")
    out = run(snakemake("-n", "-p", *TARGETS, "--config", "scale=smoke"), cwd=tree, env=environment(),
              timeout=300).stdout
    found = {}
    for block in out.split("\n\n"):
        output = re.search(r"^\s+output: (\S+?),?$", block, re.M)
        shell = re.search(r"^Shell command: (.+)$", block, re.M)
        if output and shell:
            found[output.group(1)] = shell.group(1)
    return found


def test_cola_finetunes_read_three_sources_with_coarse_labels(commands: dict[str, str]) -> None:
    for start, pretrained in (("scratch", "head.pretrained=null"),
                              ("nuskwa/dos", "head.pretrained=runs/smoke/pretrain/ptv3/nuskwa/dos/seed0")):
        line = commands[COLA_FINETUNE.format(start)]
        assert line.startswith("dos finetune ") and f"--set {pretrained} " in line
        sources = re.search(r"--set 'data\.sources=(\[.*?\])'", line).group(1)
        assert sources.count("reader_options: {labels: cola7}") == 3
        for name in ("nuscenes", "semantickitti", "waymo"):
            assert f"root: data/smoke/synthetic/synthetic-{name}," in sources
        assert "data.format=" not in line and "data.scenes=" not in line


def test_cola_transfer_and_five_shots_read_parisluco_with_the_same_classes(commands: dict[str, str]) -> None:
    target = ("--set data.format=synthetic-lidar --set data.root=data/smoke/synthetic/synthetic-parisluco "
              "--set data.reader_options.labels=cola7")
    for start in ("scratch", "nuskwa/dos"):
        line = commands[f"runs/smoke/transfer/parislucocola/finetune/ptv3/cola/full/{start}/seed0/metrics.json"]
        assert line.startswith(f"dos evaluate $(dirname {COLA_FINETUNE.format(start)}) ")
        assert f"--set 'data.sources=[]' {target}" in line
    # a transfer of a one-dataset fine-tuning is unchanged: nothing to drop
    single = commands["runs/smoke/transfer/parisluco/finetune/ptv3/nuscenes/full/scratch/seed0/metrics.json"]
    assert "data.sources" not in single and "labels" not in single
    shots = commands["runs/smoke/finetune/ptv3/parislucocola/shots_5/nuskwa/dos/seed0/metrics.json"]
    assert target in shots and "--set data.scenes=data/smoke/subsets/parislucocola/shots_5.txt" in shots
    assert "--set head.pretrained=runs/smoke/pretrain/ptv3/nuskwa/dos/seed0 " in shots
    subsets = commands["data/smoke/subsets/parislucocola/subsets.json"]
    assert "--option labels=cola7" in subsets and "--shots 5" in subsets
