# The paper as a DAG. Rules call the `dos` command line only (no torch here).
# Run: snakemake --cores 2 [--config scale=smoke|mini|paper] [targets]
# What is declared so far: the objective benchmark and the synthetic benchmark with its figures.
# The experiments of Tables 1-12 join as the training engine lands (see README, "Status").

configfile: "config/config.yaml"

SCALE = config["scale"]
if SCALE not in config["scales"]:
    raise ValueError(f"config scale={SCALE!r}: choose one of {sorted(config['scales'])}")
S = config["scales"][SCALE]


include: "workflow/rules/bench.smk"
include: "workflow/rules/data.smk"


rule all:
    default_target: True
    input:
        f"reports/{SCALE}/bench_objective.json",
        f"data/{SCALE}/synthetic/manifest.json",
        f"reports/{SCALE}/figures/synthetic_lidar_frequency.png",
