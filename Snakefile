# The paper as a DAG. Rules call the `dos` command line only (no torch here).
# Run: snakemake --cores 2 [--config scale=smoke|mini|paper [num_seeds=N] [first_seed=K] [first_stage=N0]] [targets]
#   all          the scale's main tables (config: scales.<scale>.main_tables; mini: Tables 5 and 8), their figures,
#                the benchmark figures and reports/<scale>/report.md
#   all_tables   every table of the paper (1, 3-12; Table 2, detection, is out of scope), every figure and
#                reports/<scale>/report_full.md
#   results/<scale>/tableN.csv (.md, .tex)   one table at any scale
#   results/tableN.csv (.md, .tex)   a copy of results/<configured scale>/tableN.* (rebuilt when `scale` changes)
# Layout: runs/<scale>/... (one folder per training run and seed), logs/<scale>/..., results/<scale>/,
# reports/<scale>/. Every rule reads its settings at its target's {scale}; `scale` only picks the default targets
# and what results/tableN.* holds.

from snakemake.utils import validate


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
if config.get("num_seeds") or config.get("first_seed"):
    # seeds K .. K+N-1 at every scale (N: num_seeds, else the length of the scale's own `seeds`; K: first_seed, else 0)
    first = config.get("first_seed", 0)
    for block in config["scales"].values():
        block["seeds"] = list(range(first, first + config.get("num_seeds", len(block["seeds"]))))
if config.get("first_stage", 0) > len(config["scales"][config["scale"]]["seeds"]):
    raise ValueError(f"config first_stage={config['first_stage']}: the first stage is the first N0 seeds of the "
                     f"{len(config['scales'][config['scale']]['seeds'])} run at scale {config['scale']!r}; "
                     "run at least that many (num_seeds)")

SCALE = config["scale"]
if SCALE not in config["scales"]:
    raise ValueError(f"config scale={SCALE!r}: choose one of {sorted(config['scales'])}")
S = config["scales"][SCALE]


include: "workflow/rules/common.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/visualize.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/checks.smk"


# Sub-second jobs run where snakemake runs, never through Slurm.
localrules:
    all,
    all_tables,
    table,
    claims,
    table_claims,
    configured_table,
    figure,
    report,
    report_full,
    label_subsets,
    synthetic_figures,


rule all:
    default_target: True
    input:
        f"reports/{SCALE}/bench_objective.json",
        synthetic_outputs(SCALE),
        [table_files(n) for n in S["main_tables"]],
        [figure_path(name, SCALE) for name in figures_for(S["main_tables"])],
        f"reports/{SCALE}/report.md",


rule all_tables:
    input:
        synthetic_outputs(SCALE),
        [table_files(n) for n in TABLES],
        [figure_path(name, SCALE) for name in figures_for(TABLES)],
        f"reports/{SCALE}/report_full.md",
