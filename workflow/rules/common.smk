# Helpers shared by the rules: plain Python over config/config.yaml and the table templates (no torch, no I/O
# besides reading YAML). Overrides of a run are applied in this order (later wins): the shipped config file,
# the scale's run_overrides (all, then <command>.all, then <command>.<domain>), the dataset (format, root, reader
# options), the backbone (archs), the pretraining variant, then the run's own (seed, threads, subset, weights).
# Everything a job depends on is read at the job's own scale (its {scale} wildcard); the configured `scale`
# only picks the default targets (`all`, `all_tables`) and what results/tableN.* holds (workflow/rules/tables.smk).

import os
import shlex
import shutil
import sys

import yaml
from snakemake.exceptions import WorkflowError

from dos.report.claims import claim_inputs
from dos.report.tables import template_runs

TABLES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
CONFIGS = {"pretrain": "dos/config/pretrain/dos_{domain}.yaml", "probe": "dos/config/probe/lp_{domain}.yaml",
           "finetune": "dos/config/finetune/ft_{domain}.yaml", "distill": "dos/config/distill/distill_{domain}.yaml",
           "detect": "dos/config/detect/centerpoint_{domain}.yaml"}
SWEPT = ("distill.mode", "distill.num_prototypes", "distill.cross_view", "objective.", "model.backbone", "seed")


WILDCARDS = dict(  # the global wildcard constraints (also used to read run paths back, experiments.smk)
    scale="smoke|mini|paper",
    arch="|".join(config["archs"]),
    data="[a-z0-9]+",
    pdata="[a-z0-9]+",
    target="[a-z0-9]+",
    variant="[a-z0-9_.]+",
    subset=r"full|scenes_[0-9.]+pct|points_[0-9]+|shots_[0-9]+",
    seed=r"\d+",
    n=r"\d+",
)


wildcard_constraints:
    **WILDCARDS,


def _check_scale(name, block):
    """run_overrides must not set what variants and archs decide (a Table 10 cell must be what it says)."""
    lists = [("all", block.get("run_overrides", {}).get("all", []))]
    for command, per_domain in block.get("run_overrides", {}).items():
        if command != "all":
            lists += [(f"{command}.{d}", v) for d, v in per_domain.items()]
    for where, items in lists:
        for item in items:
            key = item.split("=", 1)[0]
            if any(key == name or (name.endswith(".") and key.startswith(name)) for name in SWEPT):
                raise ValueError(f"config/config.yaml: scales.{name}.run_overrides.{where}: {key} is set by the "
                                 "pretraining variants / backbones / seeds of the tables, not per scale")


for _name, _block in config["scales"].items():
    _check_scale(_name, _block)


def dataset(name, scale):
    """The scale's mapping of a paper dataset: {format, root, domain, options}, or of a joint set (e.g. nuskwa,
    Table 3's Nu-SK-Wa): {domain, sources: [{dataset, weight, grid_size, features}]} over the scale's datasets."""
    datasets = config["scales"][scale]["datasets"]
    if name not in datasets:
        raise ValueError(f"config/config.yaml: dataset {name!r} is not mapped at scale {scale!r} "
                         f"(scales.{scale}.datasets has {', '.join(datasets)})")
    entry = dict(datasets[name])
    if "root" in entry:
        entry["root"] = entry["root"].format(scale=scale)
    return entry


def _source(part, joint, scale):
    """One `data.sources` item of a joint set: the named dataset's format, root and reader options (with the
    joint set's `options` over them, e.g. COLA's coarse labels), and the joint entry's weight, grid size and
    feature map."""
    entry = dataset(part["dataset"], scale)
    if "sources" in entry:
        raise ValueError(f"config/config.yaml: scales.{scale}.datasets.{joint}: source {part['dataset']!r} is itself "
                         "a joint set")
    options = {**(entry.get("options") or {}), **(dataset(joint, scale).get("options") or {})}
    return {"format": entry["format"], "root": entry["root"], "reader_options": options,
            **{key: part[key] for key in ("weight", "grid_size", "features") if key in part}}


def is_joint(name, scale):
    """Whether dataset `name` is a joint set (several datasets: data.sources)."""
    return "sources" in dataset(name, scale)


def data_overrides(name, scale):
    entry = dataset(name, scale)
    if "sources" in entry:
        sources = [_source(part, name, scale) for part in entry["sources"]]
        return [f"data.sources={yaml.safe_dump(sources, default_flow_style=True, width=10**6).strip()}"]
    items = [f"data.format={entry['format']}", f"data.root={entry['root']}"]
    items += [f"data.reader_options.{k}={v}" for k, v in (entry.get("options") or {}).items()]
    return items


def scale_overrides(command, domain, scale):
    run = config["scales"][scale]["run_overrides"]
    per = run.get(command, {})
    return [*run.get("all", []), *per.get("all", []), *per.get(domain, [])]


def _last(items, key):
    values = [item.split("=", 1)[1] for item in items if item.split("=", 1)[0] == key]
    return values[-1] if values else None


def variant_overrides(variant, domain, scale):
    """A pretraining variant's overrides; `double` keys are doubled from the scale's (else the config file's) value."""
    if variant not in config["variants"]:
        raise ValueError(f"config/config.yaml: no pretraining variant {variant!r} (variants: {', '.join(config['variants'])})")
    entry = config["variants"][variant]
    items = list(entry["set"])
    if entry.get("double"):
        base = scale_overrides("pretrain", domain, scale)
        with open(CONFIGS["pretrain"].format(domain=domain)) as handle:
            shipped = yaml.safe_load(handle)
        for key in entry["double"]:
            value = _last(base, key)
            if value is None:
                node = shipped
                for part in key.split("."):
                    node = node[part]
                value = node
            items.append(f"{key}={2 * int(value)}")
    return items


def sets(items):
    return " ".join(f"--set {shlex.quote(item)}" for item in items)


def resource(command, key, scale, default=None):
    """scales.<scale>.resources.<command> (else .default) [key]."""
    block = config["scales"][scale]["resources"]
    entry = block.get(command, block["default"])
    return entry[key] if default is None else entry.get(key, default)


def processes(command, scale):
    """Training processes per node: `processes`, else one per GPU (`gpu`), at least 1."""
    return resource(command, "processes", scale, max(1, resource(command, "gpu", scale)))


def require(program, why):
    """Stop before any job when a program the rules run is not on PATH (a job would only exit 127)."""
    if shutil.which(program) is None:
        here = os.path.join(os.path.dirname(sys.executable), program)
        hint = (f"it is in {os.path.dirname(sys.executable)}/, the environment of this snakemake: put that folder on "
                "PATH (`source .venv/bin/activate`), or run `dos reproduce`" if os.path.exists(here) else
                "activate the environment that has it (`source .venv/bin/activate`; `make reproduce` creates .venv)")
        raise WorkflowError(f"`{program}` is not on PATH, and {why}: {hint}")


def launcher(command, scale):
    """What a training rule runs instead of `dos`: `dos` itself for one process; torchrun with one process per
    GPU (or per `processes`, e.g. gloo on CPU) on one node; across `nodes` nodes, one torchrun per node started
    by Slurm's task launch (srun), meeting at the first node of the allocation. Rank and world size reach
    `dos` through torchrun's environment (dos.engine.distributed.init_from_env). Every program it names must be
    on PATH (checked here, so at DAG build, before any job)."""
    procs, nodes = processes(command, scale), resource(command, "nodes", scale, 1)
    why = f"the {command} jobs at scale {scale} run it ({procs} process(es) on {nodes} node(s))"
    if procs * nodes == 1:
        return "dos"
    require("torchrun", why)
    if nodes == 1:
        return f"torchrun --standalone --nproc_per_node {procs} -m dos"
    require("srun", why)
    require("scontrol", why)
    return (f"srun --ntasks-per-node 1 torchrun --nnodes {nodes} --nproc_per_node {procs} --rdzv_backend c10d "
            "--rdzv_id $SLURM_JOB_ID --rdzv_endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500 "
            "-m dos")


TRAINING_COMMANDS = ("pretrain", "distill", "probe", "finetune")

# Every rule runs `dos`; the training rules of the configured scale may run torchrun / srun too (launcher()).
# Other scales' launchers are checked when their jobs' params are built.
require("dos", "every rule runs the `dos` command line")
DOS = shutil.which("dos")
for _command in TRAINING_COMMANDS:
    launcher(_command, SCALE)


def threads_per_process(command, scale):
    return max(1, resource(command, "threads", scale) // processes(command, scale))


def synthetic_outputs(scale):
    """The synthetic benchmark and its figures (smoke and mini only: the paper scale reads the real datasets)."""
    if scale == "paper":
        return []
    return [f"data/{scale}/synthetic/manifest.json", f"reports/{scale}/figures/synthetic_lidar_frequency.png"]


def data_inputs(scale):
    """What a training job waits for: the synthetic benchmark at smoke / mini, nothing at paper (external roots)."""
    return [] if scale == "paper" else [f"data/{scale}/synthetic/manifest.json"]


def subset_overrides(data, subset, scale):
    if subset == "full":
        return []
    folder = f"data/{scale}/subsets/{data}"
    if subset.startswith("points_"):
        return [f"data.annotations={folder}/{subset}.npz"]
    return [f"data.scenes={folder}/{subset}.txt"]


def subset_inputs(data, subset, scale):
    return [] if subset == "full" else [f"data/{scale}/subsets/{data}/subsets.json"]


def template(n):
    return f"workflow/tables/table{n}.yaml"


def table_inputs(n, scale):
    block = config["scales"][scale]
    return template_runs(template(n), f"runs/{scale}", block["seeds"], list(block["datasets"]))


CLAIMS = "workflow/claims.yaml"  # the paper's claims, decided by `dos report claims`


def claims_inputs(scale, tables=None, only=False):
    """(tables, run metrics) the claims of a scale read: its main tables' claims (others are reported not run);
    `only`: the claims of `tables` alone."""
    block = config["scales"][scale]
    return claim_inputs(CLAIMS, f"runs/{scale}", block["seeds"], block["main_tables"] if tables is None else tables,
                        only)


def claims_interval_options():
    """`dos report claims` options of the interval: Stein's two-stage one with `first_stage` (the first N0 seeds
    are stage 1), and the half-width its seeds_needed column is for. A params entry: a change reruns the claims."""
    stage = f"--first-stage {config['first_stage']} " if config.get("first_stage") else ""
    return f"{stage}--half-width {config.get('target_half_width', 1.0)}"


def table_files(n, scale=None):
    """results/<scale>/tableN.{csv,md,tex}, or without a scale results/tableN.* (the configured scale's copy)."""
    folder = f"results/{scale}" if scale else "results"
    return [f"{folder}/table{n}.{ext}" for ext in ("csv", "md", "tex")]


# Figures drawn from the tables: name -> (the tables it reads, `dos report figure` arguments).
FIGURES = {
    "figure1_linear_probing": ([1], "--kind bars --block 'linear probing' --rows 'DOS (ours)' 'PTv3 (2023)' "
                                    "--title 'Figure 1: linear probing, DOS vs supervised PTv3'"),
    "table5_ablation": ([5], "--kind bars --title 'Table 5: ablation of DOS components (LP mIoU)'"),
    "table6_label_efficiency": ([6], "--kind sweep --x column --series Supervised 'DOS (ours, ft)' "
                                     "--logx --xlabel 'labelled scenes (%)' --title 'Table 6: label efficiency (FT)'"),
    "table7_label_efficiency": ([7], "--kind sweep --x column --block 'limited scenes' --series Supervised "
                                     "'DOS (ours, lin)' --logx --xlabel 'labelled scenes (%)' "
                                     "--title 'Table 7: label efficiency, limited scenes'"),
    "table8_alpha_sweep": ([8], "--kind sweep --x column --xlabel 'Zipf exponent alpha' "
                                "--title 'Table 8: Zipf exponent (LP mIoU)'"),
    "table10_prototypes": ([10], "--kind sweep --x row --logx --xlabel 'prototypes' "
                                 "--title 'Table 10: prototype count (LP mIoU)'"),
}


def figures_for(tables):
    return [name for name, (needs, _) in FIGURES.items() if set(needs) <= set(tables)]


def figure_path(name, scale):
    return f"reports/{scale}/figures/{name}.png"
