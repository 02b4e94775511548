# The training runs behind every table, one folder per run and seed under runs/<scale>/:
#   pretrain/<arch>/<pdata>/<variant>/seed<s>/encoder.pt          dos pretrain (variant: config `variants`)
#   pretrain/<arch>/<pdata>/distilled/seed<s>/encoder.pt          dos distill from pretrain/ptv3/<pdata>/dos (Table 12)
#   probe/<arch>/<data>/<subset>/<pdata>/<variant>/seed<s>/       dos probe of that encoder on <data>
#   finetune/<arch>/<data>/<subset>/<pdata>/<variant>/seed<s>/    dos finetune from that encoder
#   finetune/<arch>/<data>/<subset>/scratch/seed<s>/              dos finetune from scratch (supervised baseline)
#   transfer/<target>/<finetune run>/seed<s>/metrics.json         dos evaluate of a finetune run on <target> (Table 4)
# <data>/<pdata>: keys of scales.<scale>.datasets; <subset>: full, scenes_<p>pct, points_<n>, shots_<k> (files of
# `dos data subsets`). A run is shared by every table that names it: the default DOS pretraining on nuScenes feeds
# Tables 1, 3, 4, 5, 6, 10, 11, 12; the one on ScanNet feeds Tables 1, 7, 8, 9, 10, 11.
# Outputs are the files a run writes only when complete (encoder.pt, metrics.json), never checkpoint.pt:
# Snakemake deletes the outputs of a failed job, and the checkpoint left in place makes the re-run resume.

import re


def _domain(name, scale):
    return dataset(name, scale)["domain"]


def _training_resources(command):
    # cpus_per_task (Slurm) is the configured thread count: a rule's `threads` is capped by --cores, which the
    # workflow profile sets to 2 for local runs, also under --profile slurm. torch uses the same count
    # (train.num_threads, below), whatever Snakemake's local cap.
    # With several processes (`processes` / `gpu` > 1, see launcher()), the threads are shared between them.
    extra = {"nodes": resource(command, "nodes", 1)} if resource(command, "nodes", 1) > 1 else {}
    return dict(
        cpus_per_task=resource(command, "threads"),
        mem_mb=lambda w, attempt: attempt * resource(command, "mem_mb"),
        runtime=lambda w, attempt: attempt * resource(command, "runtime"),
        gpu=resource(command, "gpu"),
        **extra,
    )


rule label_subsets:
    input:
        lambda w: data_inputs(w.scale),
    output:
        "data/{scale}/subsets/{data}/subsets.json",
    log:
        "logs/{scale}/subsets/{data}.log",
    params:
        root=lambda w: dataset(w.data, w.scale)["root"],
        format=lambda w: dataset(w.data, w.scale)["format"],
        options=lambda w: " ".join(f"--option {k}={v}" for k, v in (dataset(w.data, w.scale).get("options") or {}).items()),
        seed=lambda w: config["scales"][w.scale]["subsets_seed"],
        fractions=lambda w: " ".join(map(str, config["subsets"][w.data]["fractions"])),
        points=lambda w: " ".join(map(str, config["subsets"][w.data]["points"])),
        shots=lambda w: " ".join(map(str, config["subsets"][w.data]["shots"])),
    shell:
        "dos data subsets {params.root} --format {params.format} {params.options} --split train "
        "--out data/{wildcards.scale}/subsets/{wildcards.data} --seed {params.seed} "
        "--fractions {params.fractions} --points {params.points} --shots {params.shots} > {log} 2>&1"


rule pretrain:
    input:
        lambda w: data_inputs(w.scale),
    output:
        "runs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}/encoder.pt",
    log:
        "logs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}.log",
    wildcard_constraints:
        variant="|".join(re.escape(name) for name in config["variants"]),
    params:
        launch=launcher("pretrain"),
        threads=threads_per_process("pretrain"),
        config=lambda w: CONFIGS["pretrain"].format(domain=_domain(w.pdata, w.scale)),
        sets=lambda w: sets([*scale_overrides("pretrain", _domain(w.pdata, w.scale), w.scale),
                             *data_overrides(w.pdata, w.scale), *config["archs"][w.arch]["model"],
                             *variant_overrides(w.variant, _domain(w.pdata, w.scale), w.scale), f"seed={w.seed}"]),
    threads: resource("pretrain", "threads")
    resources:
        **_training_resources("pretrain"),
    shell:
        "{params.launch} pretrain {params.config} --out runs/{wildcards.scale}/pretrain/{wildcards.arch}/{wildcards.pdata}/"
        "{wildcards.variant}/seed{wildcards.seed} {params.sets} --set train.num_threads={params.threads} > {log} 2>&1"


rule distill:
    input:
        lambda w: data_inputs(w.scale),
        teacher="runs/{scale}/pretrain/ptv3/{pdata}/dos/seed{seed}/encoder.pt",
    output:
        "runs/{scale}/pretrain/{arch}/{pdata}/distilled/seed{seed}/encoder.pt",
    log:
        "logs/{scale}/distill/{arch}/{pdata}/seed{seed}.log",
    params:
        launch=launcher("distill"),
        threads=threads_per_process("distill"),
        config=lambda w: CONFIGS["distill"].format(domain=_domain(w.pdata, w.scale)),
        sets=lambda w: sets([*scale_overrides("distill", _domain(w.pdata, w.scale), w.scale),
                             *data_overrides(w.pdata, w.scale), *config["archs"][w.arch]["student"],
                             f"seed={w.seed}"]),
    threads: resource("distill", "threads")
    resources:
        **_training_resources("distill"),
    shell:
        "{params.launch} distill {params.config} --out runs/{wildcards.scale}/pretrain/{wildcards.arch}/{wildcards.pdata}/"
        "distilled/seed{wildcards.seed} {params.sets} --set teacher.pretrained=$(dirname {input.teacher}) "
        "--set train.num_threads={params.threads} > {log} 2>&1"


def _segmentation_sets(command, w, pretrained):
    domain = _domain(w.data, w.scale)
    return sets([*scale_overrides(command, domain, w.scale), *data_overrides(w.data, w.scale),
                 *config["archs"][w.arch]["model"], *subset_overrides(w.data, w.subset, w.scale),
                 f"seed={w.seed}", f"head.pretrained={pretrained}"])


rule probe:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
        encoder="runs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}/encoder.pt",
    output:
        "runs/{scale}/probe/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}/metrics.json",
    log:
        "logs/{scale}/probe/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}.log",
    params:
        launch=launcher("probe"),
        threads=threads_per_process("probe"),
        config=lambda w: CONFIGS["probe"].format(domain=_domain(w.data, w.scale)),
        sets=lambda w, input: _segmentation_sets("probe", w, os.path.dirname(input.encoder)),
    threads: resource("probe", "threads")
    resources:
        **_training_resources("probe"),
    shell:
        "{params.launch} probe {params.config} --out $(dirname {output}) {params.sets} --set train.num_threads={params.threads} "
        "> {log} 2>&1"


rule finetune:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
        encoder="runs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}/encoder.pt",
    output:
        "runs/{scale}/finetune/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}/metrics.json",
    log:
        "logs/{scale}/finetune/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}.log",
    params:
        launch=launcher("finetune"),
        threads=threads_per_process("finetune"),
        config=lambda w: CONFIGS["finetune"].format(domain=_domain(w.data, w.scale)),
        sets=lambda w, input: _segmentation_sets("finetune", w, os.path.dirname(input.encoder)),
    threads: resource("finetune", "threads")
    resources:
        **_training_resources("finetune"),
    shell:
        "{params.launch} finetune {params.config} --out $(dirname {output}) {params.sets} --set train.num_threads={params.threads} "
        "> {log} 2>&1"


rule finetune_scratch:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
    output:
        "runs/{scale}/finetune/{arch}/{data}/{subset}/scratch/seed{seed}/metrics.json",
    log:
        "logs/{scale}/finetune/{arch}/{data}/{subset}/scratch/seed{seed}.log",
    params:
        launch=launcher("finetune"),
        threads=threads_per_process("finetune"),
        config=lambda w: CONFIGS["finetune"].format(domain=_domain(w.data, w.scale)),
        sets=lambda w: _segmentation_sets("finetune", w, "null"),
    threads: resource("finetune", "threads")
    resources:
        **_training_resources("finetune"),
    shell:
        "{params.launch} finetune {params.config} --out $(dirname {output}) {params.sets} --set train.num_threads={params.threads} "
        "> {log} 2>&1"


rule transfer:
    # Table 4, zero-shot: a model fine-tuned on one dataset evaluated on another with the same classes.
    input:
        "runs/{scale}/{run}/seed{seed}/metrics.json",
    output:
        "runs/{scale}/transfer/{target}/{run}/seed{seed}/metrics.json",
    log:
        "logs/{scale}/transfer/{target}/{run}/seed{seed}.log",
    wildcard_constraints:
        run="finetune/[^/]+/[^/]+/[^/]+/.+",
    params:
        sets=lambda w: sets(data_overrides(w.target, w.scale)),
    threads: resource("evaluate", "threads")
    resources:
        **_training_resources("evaluate"),
    shell:
        "dos evaluate $(dirname {input}) {params.sets} --set train.num_threads={resources.cpus_per_task} --out {output} > {log} 2>&1"
