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
    shell:
        "dos bench objective --points {params.points} --prototypes {params.prototypes} "
        "--repeats {params.repeats} --out {output} > {log} 2>&1"
