# Tables, figures and reports, per scale: results/<scale>/, reports/<scale>/ (the {scale} wildcard, so any scale
# can be built whatever the configured one; nothing of one scale reads another's files).
# `dos report table` reads a template (workflow/tables/tableN.yaml) and the metrics.json of every seed of every run
# it names, and writes results/<scale>/tableN.{csv,md,tex}.
# results/tableN.{csv,md,tex} (no scale in the path) are copies of the CONFIGURED scale's tables, made by
# `configured_table` only: building another scale never changes them, and changing `scale` rebuilds them (their
# input is another file, and the scale is a param, both of which Snakemake's rerun triggers see).


rule table:
    input:
        template=template("{n}"),
        runs=lambda w: table_inputs(int(w.n), w.scale),
    output:
        multiext("results/{scale}/table{n}", ".csv", ".md", ".tex"),
    log:
        "logs/{scale}/tables/table{n}.log",
    params:
        seeds=lambda w: " ".join(map(str, config["scales"][w.scale]["seeds"])),
        datasets=lambda w: " ".join(config["scales"][w.scale]["datasets"]),
    shell:
        "dos report table {input.template} --scale {wildcards.scale} --runs-root runs/{wildcards.scale} "
        "--seeds {params.seeds} --datasets {params.datasets} --out-dir results/{wildcards.scale} > {log} 2>&1"


rule configured_table:
    # results/tableN.* = results/<configured scale>/tableN.*, byte for byte (every row also names its scale).
    input:
        multiext(f"results/{SCALE}/table{{n}}", ".csv", ".md", ".tex"),
    output:
        multiext("results/table{n}", ".csv", ".md", ".tex"),
    log:
        f"logs/{SCALE}/tables/table{{n}}_configured.log",
    params:
        scale=SCALE,
    shell:
        "(for ext in csv md tex; do cp results/{params.scale}/table{wildcards.n}.$ext results/table{wildcards.n}.$ext; "
        "done) > {log} 2>&1"


rule figure:
    input:
        lambda w: [f"results/{w.scale}/table{n}.csv" for n in FIGURES[w.name][0]],
    output:
        "reports/{scale}/figures/{name}.png",
    log:
        "logs/{scale}/figures/{name}.log",
    wildcard_constraints:
        name="|".join(FIGURES),
    params:
        args=lambda w: FIGURES[w.name][1],
    shell:
        "dos report figure --tables {input} --out {output} {params.args} > {log} 2>&1"


rule claims:
    # The paper's claims (workflow/claims.yaml), decided from the scale's main tables; the others are "not run".
    input:
        spec=CLAIMS,
        tables=lambda w: [f"results/{w.scale}/table{n}.csv" for n in claims_inputs(w.scale)[0]],
        runs=lambda w: claims_inputs(w.scale)[1],
    output:
        multiext("results/{scale}/claims", ".csv", ".md"),
        figure="reports/{scale}/figures/claims.png",
    log:
        "logs/{scale}/tables/claims.log",
    params:
        seeds=lambda w: " ".join(map(str, config["scales"][w.scale]["seeds"])),
        tables=lambda w: " ".join(map(str, config["scales"][w.scale]["main_tables"])),
        interval=claims_interval_options(),
    shell:
        "dos report claims {input.spec} --results results/{wildcards.scale} --scale {wildcards.scale} "
        "--tables {params.tables} --runs-root runs/{wildcards.scale} --seeds {params.seeds} {params.interval} "
        "--figure {output.figure} > {log} 2>&1"


rule table_claims:
    # The claims of one table, decided from it alone (e.g. Table 2 at mini, which `all` does not build):
    # results/<scale>/claims_table<n>/claims.{csv,md} and its forest plot.
    input:
        spec=CLAIMS,
        tables=lambda w: [f"results/{w.scale}/table{n}.csv" for n in claims_inputs(w.scale, [int(w.n)], True)[0]],
        runs=lambda w: claims_inputs(w.scale, [int(w.n)], True)[1],
    output:
        multiext("results/{scale}/claims_table{n}/claims", ".csv", ".md"),
        figure="reports/{scale}/figures/claims_table{n}.png",
    log:
        "logs/{scale}/tables/claims_table{n}.log",
    params:
        seeds=lambda w: " ".join(map(str, config["scales"][w.scale]["seeds"])),
        interval=claims_interval_options(),
    shell:
        "dos report claims {input.spec} --results results/{wildcards.scale} --scale {wildcards.scale} "
        "--tables {wildcards.n} --only --runs-root runs/{wildcards.scale} --seeds {params.seeds} {params.interval} "
        "--out-dir results/{wildcards.scale}/claims_table{wildcards.n} --figure {output.figure} > {log} 2>&1"


def _report_inputs(tables, scale):
    return [*[f"results/{scale}/table{n}.{ext}" for n in tables for ext in ("csv", "md")],
            *[f"results/{scale}/claims.{ext}" for ext in ("csv", "md")], f"reports/{scale}/figures/claims.png",
            *[figure_path(name, scale) for name in figures_for(tables)], *synthetic_outputs(scale)[1:],
            *[figure_path(name, scale) for name in visuals_for(tables)]]


rule report:
    # The scale's main tables (scales.<scale>.main_tables). It shows every table present in results/<scale>/.
    input:
        lambda w: _report_inputs(config["scales"][w.scale]["main_tables"], w.scale),
    output:
        "reports/{scale}/report.md",
    log:
        "logs/{scale}/report.log",
    shell:
        "dos report document --scale {wildcards.scale} --results results/{wildcards.scale} "
        "--figures reports/{wildcards.scale}/figures --out {output} > {log} 2>&1"


rule report_full:
    # Every table (the `all_tables` target).
    input:
        lambda w: _report_inputs(TABLES, w.scale),
    output:
        "reports/{scale}/report_full.md",
    log:
        "logs/{scale}/report_full.log",
    shell:
        "dos report document --scale {wildcards.scale} --results results/{wildcards.scale} "
        "--figures reports/{wildcards.scale}/figures --out {output} > {log} 2>&1"
