# Tables, figures and the report of the configured scale.
# `dos report table` reads a template (workflow/tables/tableN.yaml) and the metrics.json of every seed of every run
# it names, and writes results/<scale>/tableN.{csv,md,tex} (kept per scale) and the same files as
# results/tableN.{csv,md,tex} (the scale last built; every row carries its scale). Switching scales rebuilds
# results/tableN.* (its inputs change). The report reads results/<scale>/ only, so scales never mix.


rule table:
    input:
        template=template("{n}"),
        runs=lambda w: table_inputs(int(w.n)),
    output:
        multiext(f"results/{SCALE}/table{{n}}", ".csv", ".md", ".tex"),
        multiext("results/table{n}", ".csv", ".md", ".tex"),
    log:
        f"logs/{SCALE}/tables/table{{n}}.log",
    params:
        scale=SCALE,
        seeds=" ".join(map(str, S["seeds"])),
        datasets=" ".join(S["datasets"]),
    shell:
        "dos report table {input.template} --scale {params.scale} --runs-root runs/{params.scale} "
        "--seeds {params.seeds} --datasets {params.datasets} --out-dir results/{params.scale} results > {log} 2>&1"


rule figure:
    input:
        lambda w: [f"results/{SCALE}/table{n}.csv" for n in FIGURES[w.name][0]],
    output:
        f"reports/{SCALE}/figures/{{name}}.png",
    log:
        f"logs/{SCALE}/figures/{{name}}.log",
    wildcard_constraints:
        name="|".join(FIGURES),
    params:
        args=lambda w: FIGURES[w.name][1],
    shell:
        "dos report figure --tables {input} --out {output} {params.args} > {log} 2>&1"


def _report_inputs(tables):
    return [*[f"results/{SCALE}/table{n}.{ext}" for n in tables for ext in ("csv", "md")],
            *[figure_path(name) for name in figures_for(tables)], *synthetic_outputs(SCALE)[1:]]


rule report:
    # The scale's main tables (scales.<scale>.main_tables). It shows every table present in results/<scale>/.
    input:
        _report_inputs(S["main_tables"]),
    output:
        f"reports/{SCALE}/report.md",
    log:
        f"logs/{SCALE}/report.log",
    params:
        scale=SCALE,
    shell:
        "dos report document --scale {params.scale} --results results/{params.scale} "
        "--figures reports/{params.scale}/figures --out {output} > {log} 2>&1"


rule report_full:
    # Every table (the `all_tables` target).
    input:
        _report_inputs(TABLES),
    output:
        f"reports/{SCALE}/report_full.md",
    log:
        f"logs/{SCALE}/report_full.log",
    params:
        scale=SCALE,
    shell:
        "dos report document --scale {params.scale} --results results/{params.scale} "
        "--figures reports/{params.scale}/figures --out {output} > {log} 2>&1"
