rule bench_objective:
    output:
        "reports/{scale}/bench_objective.json",
    log:
        "logs/{scale}/bench_objective.log",
    params:
        points=lambda w: " ".join(map(str, config["scales"][w.scale]["bench_objective"]["points"])),
        prototypes=lambda w: " ".join(map(str, config["scales"][w.scale]["bench_objective"]["prototypes"])),
        repeats=lambda w: config["scales"][w.scale]["bench_objective"]["repeats"],
    threads: 2
    resources:
        # the timed transcription of Algorithm 1 holds about 5 float32 [N, K] arrays (8.2 GB at 100k x 4096);
        # doubled on a retry under Slurm
        mem_mb=lambda w, attempt: attempt * (2000 + 24 * max(config["scales"][w.scale]["bench_objective"]["points"])
                                             * max(config["scales"][w.scale]["bench_objective"]["prototypes"]) // 2**20),
    shell:
        "dos bench objective --points {params.points} --prototypes {params.prototypes} "
        "--repeats {params.repeats} --out {output} > {log} 2>&1"
