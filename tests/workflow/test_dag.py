"""The experiment DAG (Snakefile, workflow/rules/, config/config.yaml), on copies of the working tree.

- paper scale, dry run: the whole paper (Tables 1, 3-12) is listed with the expected number of jobs per rule,
  without any data present and without touching data/ or runs/;
- mini scale, dry run: the counts of the README's main target (`all` = Table 5 and the claims);
- `snakemake --profile slurm results/table5.csv -n` works from the repository root;
- `snakemake --lint`: only the documented exceptions;
- smoke scale, for real: `all_tables` with --cores 2 builds every table, figure and the report, and every cell
  the templates declare is filled (CI; about 10 minutes on 2 shared cores).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow._helpers import REPO_ROOT, copy_tree, environment, run, snakemake

TABLES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
FIGURES = ["figure1_linear_probing", "table5_ablation", "table6_label_efficiency", "table7_label_efficiency",
           "table8_alpha_sweep",
           "table10_prototypes", "synthetic_lidar_frequency", "figure4", "figure5", "pca", "detection_bev"]
# Jobs per seed of `all_tables`. pretrain: nuScenes 16 (default, 5 Table 5 variants, 9 more of Table 10,
# no_crossview) + SPUNet 2 (Table 12) + Waymo 2 + SemanticKITTI 1 + ScanNet 20 (default, 8 alphas, 10 more of
# Table 10, no_crossview) + the joint nuskwa 1 (Table 3's Nu-SK-Wa, Table 1's DOS*: probed and fine-tuned on each of
# its 3 datasets) + the detection encoder dos_det 1 (Table 2: CenterPoint from it at 100 % and 20 % of the labelled
# frames, and from scratch at 100 %; the from-scratch run at 20 % belongs to the claims, built where Table 2 is a
# main table: paper);
# the paper scale adds the S3DIS probe and fine-tunings (S3DIS has no synthetic stand-in). Table 4's CoLa column adds
# 2 finetune (cola from nuskwa, parislucocola 5 shots), 1 finetune_scratch (cola) and 2 transfer (to parislucocola).
PER_SEED_PAPER = {"pretrain": 43, "distill": 1, "probe": 69, "finetune": 18, "finetune_scratch": 20, "transfer": 6,
                  "detect": 2, "detect_scratch": 2}  # + the 20 % from-scratch run: Table 2's claims are decided here
PER_SEED_SMOKE = {"pretrain": 43, "distill": 1, "probe": 68, "finetune": 17, "finetune_scratch": 19, "transfer": 6,
                  "detect": 2, "detect_scratch": 1}
# Table 5 (6 pretrain, 6 probe) + Table 1's claim DOS > random (the random encoder's probe)
PER_SEED_MINI_ALL = {"pretrain": 6, "probe": 6, "probe_random": 1}


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake (dry) run: rule -> number of jobs."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    for line in lines[start + 3:]:
        match = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def seeds(scale: str) -> list[int]:
    return yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())["scales"][scale]["seeds"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the working tree without data/, runs/, results/<scale>/ or logs/ (those are not in git)."""
    return copy_tree(tmp_path_factory.mktemp("dag") / "repo")


def test_paper_dry_run_lists_the_whole_paper_without_data(tree: Path) -> None:
    assert not (tree / "data").exists()
    out = run(snakemake("-n", "all_tables", "--config", "scale=paper"), cwd=tree, env=environment(), timeout=300)
    counts = job_counts(out.stdout)
    n = len(seeds("paper"))
    for rule, per_seed in PER_SEED_PAPER.items():
        assert counts.get(rule) == per_seed * n, (rule, counts)
    assert counts["table"] == len(TABLES) and counts["figure"] == 6 and counts["label_subsets"] == 4
    assert "synthetic_benchmark" not in counts  # the paper scale reads the real datasets from config
    for table in TABLES:
        assert f"results/table{table}.csv" in out.stdout and f"results/paper/table{table}.csv" in out.stdout
    assert "reports/paper/report_full.md" in out.stdout
    # the real roots come from config; S3DIS is probed and fine-tuned from the ScanNet pretraining
    assert "--set data.format=s3dis --set data.root=data/s3dis" in out.stdout
    assert "runs/paper/probe/ptv3/s3dis/full/scannet/dos/seed0" in out.stdout
    assert not (tree / "data").exists() and not (tree / "runs").exists() and not (tree / "logs").exists()


def test_mini_main_target_counts(tree: Path) -> None:
    out = run(snakemake("-n", "--config", "scale=mini"), cwd=tree, env=environment(), timeout=300)
    counts = job_counts(out.stdout)
    n = len(seeds("mini"))
    for rule, per_seed in PER_SEED_MINI_ALL.items():
        assert counts.get(rule) == per_seed * n, (rule, counts)
    assert counts["table"] == 1 and counts["figure"] == 1 and counts["report"] == 1 and counts["claims"] == 1
    assert not {"finetune", "finetune_scratch", "distill", "transfer"} & set(counts)
    assert n == 3   # issue 12: Table 5 from 3 seeds
    for path in ("results/table5.csv", "reports/mini/figures/table5_ablation.png", "results/mini/claims.csv",
                 "runs/mini/probe/ptv3/nuscenes/full/random/seed2", "reports/mini/report.md"):
        assert path in out.stdout


def _claims_command(stdout: str) -> str:
    """The `dos report claims` command line of a `snakemake -n -p` listing."""
    return next(line for line in stdout.splitlines() if "dos report claims" in line)


def _assert_config_refused(tree: Path, setting: str, message: str) -> None:
    """`--config scale=mini <setting>` stops the dry run, naming `message`."""
    bad = subprocess.run(snakemake("-n", "--config", "scale=mini", setting), cwd=tree, env=environment(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and message in bad.stdout + bad.stderr


def test_num_seeds_runs_seeds_zero_to_n_and_the_claims_read_them(tree: Path) -> None:
    """`--config num_seeds=8` (`make reproduce SEEDS=8`): every run of the main target at seeds 0-7, and the
    tables and claims are given those seeds (their --seeds argument)."""
    out = run(snakemake("-n", "-p", "--config", "scale=mini", "num_seeds=8"), cwd=tree, env=environment(), timeout=300)
    counts = job_counts(out.stdout)
    for rule, per_seed in PER_SEED_MINI_ALL.items():
        assert counts.get(rule) == per_seed * 8, (rule, counts)
    assert "runs/mini/pretrain/ptv3/nuscenes/dos/seed7/encoder.pt" in out.stdout
    assert "runs/mini/pretrain/ptv3/nuscenes/dos/seed8/" not in out.stdout
    assert "--seeds 0 1 2 3 4 5 6 7 " in _claims_command(out.stdout)
    _assert_config_refused(tree, "num_seeds=0", "num_seeds")


def test_first_seed_shifts_the_seeds_to_ones_not_run_before(tree: Path) -> None:
    """`--config num_seeds=3 first_seed=10` (`make reproduce SEEDS=3 FIRST_SEED=10`): seeds 10-12 and no other,
    and the claims read those; without num_seeds the scale's own number of seeds (mini: 3) is kept."""
    for extra in (["num_seeds=3", "first_seed=10"], ["first_seed=10"]):
        out = run(snakemake("-n", "-p", "--config", "scale=mini", *extra), cwd=tree, env=environment(), timeout=300)
        counts = job_counts(out.stdout)
        for rule, per_seed in PER_SEED_MINI_ALL.items():
            assert counts.get(rule) == per_seed * 3, (extra, rule, counts)
        for seed in (10, 12):
            assert f"runs/mini/pretrain/ptv3/nuscenes/dos/seed{seed}/encoder.pt" in out.stdout
        for seed in (0, 9, 13):
            assert f"runs/mini/pretrain/ptv3/nuscenes/dos/seed{seed}/" not in out.stdout
        assert "--seeds 10 11 12 " in _claims_command(out.stdout)
    _assert_config_refused(tree, "first_seed=-1", "first_seed")


def test_first_stage_makes_the_claims_steins_and_is_checked_against_the_seeds(tree: Path) -> None:
    """`--config first_stage=N0` (`make reproduce RESOLVE=1`'s stages): the claims rule decides with Stein's
    intervals over the first N0 seeds' sds, for the configured target half-width; a first stage longer than the
    seeds run is refused before any job."""
    out = run(snakemake("-n", "-p", "--config", "scale=mini", "num_seeds=4", "first_stage=3", "target_half_width=0.5",
                        "--", "results/mini/claims.csv"), cwd=tree, env=environment(), timeout=300)
    assert "--seeds 0 1 2 3 --first-stage 3 --half-width 0.5 " in _claims_command(out.stdout)
    _assert_config_refused(tree, "first_stage=4", "first_stage=4")


def test_shared_pretraining_feeds_every_table(tree: Path) -> None:
    """One default DOS pretraining per dataset and seed, whichever tables ask for it."""
    out = run(snakemake("-n", "all_tables", "--config", "scale=smoke"), cwd=tree, env=environment(), timeout=300)
    outputs = re.findall(r"output: (runs/smoke/pretrain/\S+/encoder\.pt)", out.stdout)
    # pretrain/ holds the dos pretrain runs and the distilled SPUNet (Table 12), each listed once
    per_seed = PER_SEED_SMOKE["pretrain"] + PER_SEED_SMOKE["distill"]
    assert len(outputs) == len(set(outputs)) == per_seed * len(seeds("smoke"))
    assert "runs/smoke/pretrain/ptv3/nuscenes/dos/seed0/encoder.pt" in outputs
    assert "runs/smoke/pretrain/ptv3/scannet/dos/seed0/encoder.pt" in outputs
    # Table 11 doubles the batch (smoke: 2 -> 4) and the epochs (config file: 50 -> 100)
    line = next(l for l in out.stdout.splitlines() if "pretrain/ptv3/nuscenes/no_crossview" in l and "dos pretrain" in l)
    assert "--set train.batch_size=4" in line and "--set train.epochs=100" in line


def test_slurm_profile_dry_run(tree: Path) -> None:
    if not (tree / "slurm").is_symlink():
        pytest.skip("no slurm profile link in this checkout")
    out = run(snakemake("--profile", "slurm", "results/table5.csv", "-n", "--config", "scale=paper"), cwd=tree,
              env=environment(), timeout=300)
    assert "results/table5.csv" in out.stdout
    # training rules carry their resources; GPUs at the paper scale only, 2 per pretraining run as in the paper
    pretrain = [line for line in out.stdout.splitlines() if "resources:" in line and "mem_mb=128000" in line]
    assert pretrain and all("gpu=2" in line and "runtime=2880" in line and "cpus_per_task=16" in line
                               for line in pretrain), out.stdout[-3000:]
    smoke = run(snakemake("--profile", "slurm", "results/table5.csv", "-n", "--config", "scale=smoke"), cwd=tree,
                env=environment(), timeout=300)
    assert "gpu=1" not in smoke.stdout and "gpu=0" in smoke.stdout


def test_training_rules_launch_torchrun_with_one_process_per_gpu(tree: Path) -> None:
    """gpu: 2 (paper pretraining) -> torchrun with 2 processes sharing the threads; one process -> plain dos."""
    paper = run(snakemake("-n", "-p", "results/table5.csv", "--config", "scale=paper"), cwd=tree, env=environment(),
                timeout=300).stdout
    shells = [line.strip().removeprefix("Shell command:").strip() for line in paper.splitlines()
              if " pretrain dos/config/pretrain/" in line]
    assert shells and all(line.startswith("torchrun --standalone --nproc_per_node 2 -m dos pretrain ")
                          and "--set train.num_threads=8" in line for line in shells), shells[:2]
    assert any(line.strip().removeprefix("Shell command:").strip().startswith("dos probe ")
               for line in paper.splitlines())
    smoke = run(snakemake("-n", "-p", "results/table5.csv", "--config", "scale=smoke"), cwd=tree, env=environment(),
                timeout=300).stdout
    assert "torchrun" not in smoke and any(line.strip().removeprefix("Shell command:").strip().startswith("dos pretrain ")
                                           for line in smoke.splitlines())


def test_lint_has_only_documented_exceptions(tree: Path) -> None:
    """Documented exceptions: no conda/container per rule (the environment is the package's .venv, `make test`),
    and helper functions next to rules (workflow/rules/common.smk and experiments.smk keep them beside the rules
    that use them)."""
    out = subprocess.run(snakemake("--lint", "--config", "scale=paper"), cwd=tree, env=environment(), timeout=300,
                         capture_output=True, text=True)  # exits 1 when it has anything to say
    assert "Lints for rule" in out.stdout + out.stderr or out.returncode == 0, out.stderr[-3000:]
    kinds = set(re.findall(r"^\s+\* (.+?):?$", out.stdout + out.stderr, flags=re.M))
    allowed = {"Specify a conda environment or container for each rule.", "Mixed rules and functions in same snakefile."}
    assert kinds <= allowed, kinds - allowed


def test_smoke_all_tables_builds_every_table_figure_and_report(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path / "repo")
    start = time.monotonic()
    # the copy's own `dos` package runs the jobs; bytecode is written (each job would compile it again otherwise)
    env = environment(PYTHONPATH=str(repo), PYTHONDONTWRITEBYTECODE="")
    run(snakemake("--cores", "2", "all_tables", "--config", "scale=smoke"), cwd=repo, env=env, timeout=900)
    elapsed = time.monotonic() - start
    assert elapsed < 900

    from dos.report.tables import expand_spec, load_spec, read_table_csv

    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())["scales"]["smoke"]
    for table in TABLES:
        for folder in ("results", "results/smoke"):
            for ext in ("csv", "md", "tex"):
                assert (repo / folder / f"table{table}.{ext}").is_file(), f"{folder}/table{table}.{ext}"
        frame = read_table_csv(repo / "results" / f"table{table}.csv")
        assert set(frame["scale"]) == {"smoke"}
        spec = expand_spec(load_spec(repo / "workflow" / "tables" / f"table{table}.yaml", scale="smoke"),
                           "runs/smoke", config["seeds"], list(config["datasets"]))
        declared = {(c["block"], c["row"], c["column"], c["metric"]) for c in spec["cells"]}
        assert declared, table
        for _, row in frame.iterrows():
            key = (row["block"], row["row"], row["column"], row["metric"])
            if key in declared:
                assert row["n_seeds"] == len(config["seeds"]) and math.isfinite(row["reproduced_mean"]), (table, key)
            else:
                assert row["n_seeds"] == 0 and row["note"], (table, key)  # empty cells say why
    for name in FIGURES:
        assert (repo / "reports" / "smoke" / "figures" / f"{name}.png").is_file(), name
    report = (repo / "reports" / "smoke" / "report_full.md").read_text()
    for table in TABLES:
        assert f"Table {table}:" in report
    print(f"smoke all_tables: {elapsed:.0f} s")
    shutil.rmtree(repo / "runs")


def test_pretrain_rule_on_two_gloo_processes_equals_one_process(tmp_path: Path) -> None:
    """The rule's own multi-process path (launcher(): torchrun, 2 gloo processes on CPU) gives the weights of the
    single-process rule. As in the engine's DDP test: the clustering target (its Sinkhorn spans the batch, so the
    reduction across ranks is exercised) and no DropPath (it draws per-point numbers from each rank's RNG)."""
    import torch

    repo = copy_tree(tmp_path / "repo")
    recipe = ["objective.target=clustering", "objective.zipf_alpha=0", "model.overrides={drop_path: 0.0}"]
    extra = tmp_path / "variants.yaml"
    extra.write_text(yaml.safe_dump({"variants": {"one": {"set": recipe}, "two": {"set": recipe}}}))
    two_procs = tmp_path / "two_processes.yaml"
    two_procs.write_text(yaml.safe_dump({"scales": {"smoke": {"resources": {"pretrain": {
        "threads": 2, "mem_mb": 2000, "runtime": 15, "gpu": 0, "processes": 2}}}}}))
    env = environment(OMP_NUM_THREADS="1")
    target = "runs/smoke/pretrain/ptv3/nuscenes/{}/seed0/encoder.pt"
    run(snakemake("--cores", "2", target.format("one"), "--configfile", "config/config.yaml", str(extra),
                  "--config", "scale=smoke"), cwd=repo, env=env, timeout=600)
    run(snakemake("--cores", "2", target.format("two"), "--configfile", "config/config.yaml", str(extra),
                  str(two_procs), "--config", "scale=smoke"), cwd=repo, env=env, timeout=600)
    log = (repo / "logs/smoke/pretrain/ptv3/nuscenes/two/seed0.log").read_text()
    provenance = yaml.safe_load((repo / target.format("two")).with_name("provenance.json").read_text())
    assert provenance["world_size"] == 2, log[-2000:]
    a = torch.load(repo / target.format("one"), map_location="cpu", weights_only=False)["student"]
    b = torch.load(repo / target.format("two"), map_location="cpu", weights_only=False)["student"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=2e-5, rtol=1e-4), key
