rule synthetic_benchmark:
    output:
        "data/{scale}/synthetic/manifest.json",
    log:
        "logs/{scale}/synthetic_benchmark.log",
    params:
        generate=lambda w: config["scales"][w.scale]["synthetic"]["generate"],
        seed=lambda w: config["scales"][w.scale]["synthetic"]["seed"],
    threads: 2
    shell:
        "dos data generate --scale {params.generate} --seed {params.seed} --out data/{wildcards.scale}/synthetic "
        "> {log} 2>&1"


rule synthetic_figures:
    input:
        "data/{scale}/synthetic/manifest.json",
    output:
        "reports/{scale}/figures/synthetic_lidar_frequency.png",
    log:
        "logs/{scale}/synthetic_figures.log",
    shell:
        "dos data figures data/{wildcards.scale}/synthetic reports/{wildcards.scale}/figures > {log} 2>&1"
