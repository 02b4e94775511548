# The training runs behind every table, one folder per run and seed under runs/<scale>/:
#   pretrain/<arch>/<pdata>/<variant>/seed<s>/encoder.pt          dos pretrain (variant: config `variants`)
#   pretrain/<arch>/<pdata>/distilled/seed<s>/encoder.pt          dos distill from pretrain/ptv3/<pdata>/dos (Table 12)
#   probe/<arch>/<data>/<subset>/<pdata>/<variant>/seed<s>/       dos probe of that encoder on <data>
#   finetune/<arch>/<data>/<subset>/<pdata>/<variant>/seed<s>/    dos finetune from that encoder
#   finetune/<arch>/<data>/<subset>/scratch/seed<s>/              dos finetune from scratch (supervised baseline)
#   probe/<arch>/<data>/<subset>/random/seed<s>/                  dos probe of a random frozen encoder (claims)
#   transfer/<target>/<finetune run>/seed<s>/metrics.json         dos evaluate of a finetune run on <target> (Table 4)
#                                                                 (<data> of a finetune run may be a joint set: cola)
#   detect/<arch>/<data>/<subset>/<pdata>/<variant>/seed<s>/      dos detect (CenterPoint) from that encoder (Table 2)
#   detect/<arch>/<data>/<subset>/scratch/seed<s>/                dos detect from scratch
# <data>/<pdata>: keys of scales.<scale>.datasets; <subset>: full, scenes_<p>pct, points_<n>, shots_<k> (files of
# `dos data subsets`). A run is shared by every table that names it: the default DOS pretraining on nuScenes feeds
# Tables 1, 3, 4, 5, 6, 10, 11, 12; the one on ScanNet feeds Tables 1, 7, 8, 9, 10, 11.
# Outputs are the files a run writes only when complete (encoder.pt, metrics.json), never checkpoint.pt:
# Snakemake deletes the outputs of a failed job, and the checkpoint left in place makes the re-run resume.
# Every training rule passes --restart-if-changed: a job re-run because its params (variant, run_overrides, seed)
# or its input (an upstream encoder) changed finds a run folder of other settings and starts it afresh instead
# of resuming it (see dos/engine/run_folder.py); a job re-run after a failure or preemption resumes.

import re


# The run folders' output files, by rule (the rules' `output:`; check_run_configs() reads paths back with them).
RUNS = {
    "pretrain": "runs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}/encoder.pt",
    "distill": "runs/{scale}/pretrain/{arch}/{pdata}/distilled/seed{seed}/encoder.pt",
    "probe": "runs/{scale}/probe/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}/metrics.json",
    "finetune": "runs/{scale}/finetune/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}/metrics.json",
    "finetune_scratch": "runs/{scale}/finetune/{arch}/{data}/{subset}/scratch/seed{seed}/metrics.json",
    "probe_random": "runs/{scale}/probe/{arch}/{data}/{subset}/random/seed{seed}/metrics.json",
    "transfer": "runs/{scale}/transfer/{target}/{run}/seed{seed}/metrics.json",
    "detect": "runs/{scale}/detect/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}/metrics.json",
    "detect_scratch": "runs/{scale}/detect/{arch}/{data}/{subset}/scratch/seed{seed}/metrics.json",
}
RUN_WILDCARDS = {  # the rules' own wildcard constraints, on top of common.smk's WILDCARDS
    "pretrain": {"variant": "|".join(re.escape(name) for name in config["variants"])},
    "transfer": {"run": "finetune/[^/]+/[^/]+/[^/]+/.+"},
}


def _domain(name, scale):
    return dataset(name, scale)["domain"]


def _run_dir(path):
    return os.path.dirname(path)


def _training_resources(command):
    # cpus_per_task (Slurm) is the configured thread count: a rule's `threads` is capped by --cores, which the
    # workflow profile sets to 2 for local runs, also under --profile slurm. torch uses the same count
    # (train.num_threads, below), whatever Snakemake's local cap.
    # With several processes (`processes` / `gpu` > 1, see launcher()), the threads are shared between them.
    # All of it is read at the job's own scale (its {scale} wildcard).
    return dict(
        cpus_per_task=lambda w: resource(command, "threads", w.scale),
        mem_mb=lambda w, attempt: attempt * resource(command, "mem_mb", w.scale),
        runtime=lambda w, attempt: attempt * resource(command, "runtime", w.scale),
        gpu=lambda w: resource(command, "gpu", w.scale),
        nodes=lambda w: resource(command, "nodes", w.scale, 1),
    )


# What each training job runs: (command, config file, its --set overrides, in order), from its wildcards. The
# rules' params and check_run_configs() both call these, so the check sees exactly what the jobs get.
def pretrain_job(w):
    domain = _domain(w.pdata, w.scale)
    return "pretrain", CONFIGS["pretrain"].format(domain=domain), [
        *scale_overrides("pretrain", domain, w.scale), *data_overrides(w.pdata, w.scale),
        *config["archs"][w.arch]["model"], *variant_overrides(w.variant, domain, w.scale), f"seed={w.seed}",
        f"train.num_threads={threads_per_process('pretrain', w.scale)}"]


def distill_job(w):
    domain = _domain(w.pdata, w.scale)
    teacher = _run_dir(_teacher(w))
    return "distill", CONFIGS["distill"].format(domain=domain), [
        *scale_overrides("distill", domain, w.scale), *data_overrides(w.pdata, w.scale),
        *config["archs"][w.arch]["student"], f"seed={w.seed}", f"teacher.pretrained={teacher}",
        f"train.num_threads={threads_per_process('distill', w.scale)}"]


def _downstream_job(command, w, pretrained):
    domain = _domain(w.data, w.scale)
    return command, CONFIGS[command].format(domain=domain), [
        *scale_overrides(command, domain, w.scale), *data_overrides(w.data, w.scale),
        *config["archs"][w.arch]["model"], *subset_overrides(w.data, w.subset, w.scale),
        f"seed={w.seed}", f"head.pretrained={pretrained}",
        f"train.num_threads={threads_per_process(command, w.scale)}"]


def _encoder(w):
    """The encoder a probe / finetune job starts from."""
    return RUNS["pretrain"].format(scale=w.scale, arch=w.arch, pdata=w.pdata, variant=w.variant, seed=w.seed)


def _teacher(w):
    """The encoder a distill job distills (Table 12: the default DOS PTv3 of the same data and seed)."""
    return RUNS["pretrain"].format(scale=w.scale, arch="ptv3", pdata=w.pdata, variant="dos", seed=w.seed)


def _transferred(w):
    """The finetune run a transfer job evaluates."""
    return f"runs/{w.scale}/{w.run}/seed{w.seed}/metrics.json"


def probe_job(w):
    return _downstream_job("probe", w, _run_dir(_encoder(w)))


def finetune_job(w):
    return _downstream_job("finetune", w, _run_dir(_encoder(w)))


def finetune_scratch_job(w):
    return _downstream_job("finetune", w, "null")


def probe_random_job(w):
    return _downstream_job("probe", w, "null")


def detect_job(w):
    return _downstream_job("detect", w, _run_dir(_encoder(w)))


def detect_scratch_job(w):
    return _downstream_job("detect", w, "null")


def transfer_job(w):
    """`dos evaluate` of a finetune run: its overrides apply to the run's saved config (see check_run_configs).
    A run fine-tuned on a joint set (finetune/<arch>/<joint set>/...) drops its data.sources to read the target."""
    trained_on = w.run.split("/")[2]
    drop = ["data.sources=[]"] if is_joint(trained_on, w.scale) and not is_joint(w.target, w.scale) else []
    return "evaluate", None, [*drop, *data_overrides(w.target, w.scale),
                              f"train.num_threads={resource('evaluate', 'threads', w.scale)}"]


JOBS = {"pretrain": pretrain_job, "distill": distill_job, "probe": probe_job, "finetune": finetune_job,
        "finetune_scratch": finetune_scratch_job, "probe_random": probe_random_job, "transfer": transfer_job,
        "detect": detect_job, "detect_scratch": detect_scratch_job}


def _job_config(job):
    return lambda w: job(w)[1]


def _job_sets(job):
    return lambda w: sets(job(w)[2])


# The shell line of every rule downstream of a pretraining: probe, finetune, detect and their random / scratch starts.
DOWNSTREAM_SHELL = "{params.launch} {params.command} {params.config} --out $(dirname {output}) --restart-if-changed {params.sets} > {log} 2>&1"


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
        RUNS["pretrain"],
    log:
        "logs/{scale}/pretrain/{arch}/{pdata}/{variant}/seed{seed}.log",
    wildcard_constraints:
        **RUN_WILDCARDS["pretrain"],
    params:
        launch=lambda w: launcher("pretrain", w.scale),
        config=_job_config(pretrain_job),
        sets=_job_sets(pretrain_job),
    threads: lambda w: resource("pretrain", "threads", w.scale)
    resources:
        **_training_resources("pretrain"),
    shell:
        "{params.launch} pretrain {params.config} --out $(dirname {output}) --restart-if-changed {params.sets} > {log} 2>&1"


rule distill:
    input:
        lambda w: data_inputs(w.scale),
        teacher=_teacher,
    output:
        RUNS["distill"],
    log:
        "logs/{scale}/distill/{arch}/{pdata}/seed{seed}.log",
    params:
        launch=lambda w: launcher("distill", w.scale),
        config=_job_config(distill_job),
        sets=_job_sets(distill_job),
    threads: lambda w: resource("distill", "threads", w.scale)
    resources:
        **_training_resources("distill"),
    shell:
        "{params.launch} distill {params.config} --out $(dirname {output}) --restart-if-changed {params.sets} > {log} 2>&1"


rule probe:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
        encoder=_encoder,
    output:
        RUNS["probe"],
    log:
        "logs/{scale}/probe/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}.log",
    params:
        command="probe",
        launch=lambda w: launcher("probe", w.scale),
        config=_job_config(probe_job),
        sets=_job_sets(probe_job),
    threads: lambda w: resource("probe", "threads", w.scale)
    resources:
        **_training_resources("probe"),
    shell:
        DOWNSTREAM_SHELL


rule finetune:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
        encoder=_encoder,
    output:
        RUNS["finetune"],
    log:
        "logs/{scale}/finetune/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}.log",
    params:
        command="finetune",
        launch=lambda w: launcher("finetune", w.scale),
        config=_job_config(finetune_job),
        sets=_job_sets(finetune_job),
    threads: lambda w: resource("finetune", "threads", w.scale)
    resources:
        **_training_resources("finetune"),
    shell:
        DOWNSTREAM_SHELL


rule finetune_scratch:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
    output:
        RUNS["finetune_scratch"],
    log:
        "logs/{scale}/finetune/{arch}/{data}/{subset}/scratch/seed{seed}.log",
    params:
        command="finetune",
        launch=lambda w: launcher("finetune", w.scale),
        config=_job_config(finetune_scratch_job),
        sets=_job_sets(finetune_scratch_job),
    threads: lambda w: resource("finetune", "threads", w.scale)
    resources:
        **_training_resources("finetune"),
    shell:
        DOWNSTREAM_SHELL


rule probe_random:
    # The same linear probe on a random, frozen encoder: the floor a pretrained encoder must clear (the claims).
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
    output:
        RUNS["probe_random"],
    log:
        "logs/{scale}/probe/{arch}/{data}/{subset}/random/seed{seed}.log",
    params:
        command="probe",
        launch=lambda w: launcher("probe", w.scale),
        config=_job_config(probe_random_job),
        sets=_job_sets(probe_random_job),
    threads: lambda w: resource("probe", "threads", w.scale)
    resources:
        **_training_resources("probe"),
    shell:
        DOWNSTREAM_SHELL


rule transfer:
    # Table 4, zero-shot: a model fine-tuned on one dataset evaluated on another with the same classes.
    input:
        _transferred,
    output:
        RUNS["transfer"],
    log:
        "logs/{scale}/transfer/{target}/{run}/seed{seed}.log",
    wildcard_constraints:
        **RUN_WILDCARDS["transfer"],
    params:
        sets=_job_sets(transfer_job),
    threads: lambda w: resource("evaluate", "threads", w.scale)
    resources:
        **_training_resources("evaluate"),
    shell:
        "dos evaluate $(dirname {input}) {params.sets} --out {output} > {log} 2>&1"


rule detect:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
        encoder=_encoder,
    output:
        RUNS["detect"],
    log:
        "logs/{scale}/detect/{arch}/{data}/{subset}/{pdata}/{variant}/seed{seed}.log",
    params:
        command="detect",
        launch=lambda w: launcher("detect", w.scale),
        config=_job_config(detect_job),
        sets=_job_sets(detect_job),
    threads: lambda w: resource("detect", "threads", w.scale)
    resources:
        **_training_resources("detect"),
    shell:
        DOWNSTREAM_SHELL


rule detect_scratch:
    input:
        lambda w: data_inputs(w.scale),
        lambda w: subset_inputs(w.data, w.subset, w.scale),
    output:
        RUNS["detect_scratch"],
    log:
        "logs/{scale}/detect/{arch}/{data}/{subset}/scratch/seed{seed}.log",
    params:
        command="detect",
        launch=lambda w: launcher("detect", w.scale),
        config=_job_config(detect_scratch_job),
        sets=_job_sets(detect_scratch_job),
    threads: lambda w: resource("detect", "threads", w.scale)
    resources:
        **_training_resources("detect"),
    shell:
        DOWNSTREAM_SHELL
