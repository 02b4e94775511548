"""dos report claims: paired per-seed differences, t-intervals and verdicts, from fake runs and tables."""

from __future__ import annotations

import argparse
import math
import statistics

import pytest
import yaml

from dos.errors import DosError
from dos.report import claims, tables
from dos.report.tables import KEY, paper_numbers
from tests.report.helpers import write_metrics, write_spec

REPO_CLAIMS = "workflow/claims.yaml"


def test_t_quantiles_are_students():
    scipy_stats = pytest.importorskip("scipy.stats")  # scipy comes with the dev extra (POT)
    for df in (1, 2, 3, 5, 10, 29, 30, 31, 45, 100, 1000):
        assert claims.t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=2e-4)
    with pytest.raises(ValueError):
        claims.t_quantile_975(0)


def test_t_interval_by_hand_and_verdicts():
    mean, low, high = claims.t_interval([1.0, 2.0, 6.0])
    half = 4.3027 * statistics.stdev([1.0, 2.0, 6.0]) / math.sqrt(3)
    assert mean == pytest.approx(3.0) and low == pytest.approx(3.0 - half) and high == pytest.approx(3.0 + half)
    assert math.isnan(claims.t_interval([2.0])[1])
    assert claims.verdict(0.5, 2.0, +1) == "reproduced"
    assert claims.verdict(0.5, 2.0, -1) == "contradicted"
    assert claims.verdict(-2.0, -0.5, +1) == "contradicted"
    assert claims.verdict(-0.5, 2.0, +1) == "inconclusive"
    assert claims.verdict(math.nan, math.nan, +1) == "inconclusive"


def test_expressions_allow_arithmetic_and_max_only():
    tree = claims.check_expression("max(a, b) - min(c, 2) / 4", {"a", "b", "c"}, "here")
    assert claims.evaluate(tree, {"a": 1.0, "b": 3.0, "c": 6.0}) == pytest.approx(3.0 - 0.5)
    for bad, message in [("__import__('os')", "calls something other"), ("a.real", "Attribute"),
                         ("d - a", "not a term"), ("a if b else c", "IfExp"), ("a -", "cannot parse"),
                         ("'x' + a", "non-number")]:
        with pytest.raises(DosError, match=message):
            claims.check_expression(bad, {"a", "b", "c"}, "here")


def _table5(root, values: dict[str, list[float]], seeds=(0, 1, 2)):
    """results/table5.csv from fake per-seed runs: values[row] = mIoU fractions per seed."""
    cells = []
    for row, per_seed in values.items():
        block = "masked self-distillation"
        runs = [write_metrics(root / f"runs/{row.replace(' ', '_')}/seed{s}/metrics.json", miou=v)
                for s, v in zip(seeds, per_seed)]
        cells.append({"block": block, "row": row, "column": "nuScenes", "metric": "miou", "runs": runs})
    spec = write_spec(root / "t5.yaml", 5, "mini", cells)
    tables.write_table(tables.build_table(tables.load_spec(spec)), root / "results")


def _spec(root, entries):
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": entries}, sort_keys=False))
    return path


def _pair(claim, a, b, **extra):
    return {"table": 5, "claim": claim, "diff": "a - b", **extra,
            "terms": {"a": {"block": "masked self-distillation", "row": a, "column": "nuScenes", "metric": "miou"},
                      "b": {"block": "masked self-distillation", "row": b, "column": "nuScenes", "metric": "miou"}}}


def test_claims_pair_runs_by_seed_and_decide(tmp_path):
    _table5(tmp_path, {
        "observable (ours)": [0.60, 0.70, 0.65],   # beats naive by 2, 2.5, 1.5 points: reproduced
        "naive": [0.58, 0.675, 0.635],
        "token jitter": [0.59, 0.66, 0.66],        # vs naive: +1, -1.5, +2.5: inconclusive
    })
    spec = _spec(tmp_path, [_pair("observable > naive", "observable (ours)", "naive"),
                            _pair("token jitter >= naive", "token jitter", "naive"),
                            _pair("naive > observable", "naive", "observable (ours)", expect=">")])
    frame = claims.build_claims(claims.load_claims(spec), tmp_path / "results", base=".")
    assert list(frame.columns) == claims.COLUMNS
    first = frame.iloc[0]
    # paired: the per-seed differences, not the difference of means with unpaired spreads
    assert first["per_seed"] == "2.00 2.50 1.50" and first["n_seeds"] == 3 and first["seeds"] == "0 1 2"
    assert first["diff"] == pytest.approx(2.0)
    half = 4.3027 * statistics.stdev([2.0, 2.5, 1.5]) / math.sqrt(3)
    assert first["ci_low"] == pytest.approx(2.0 - half) and first["ci_high"] == pytest.approx(2.0 + half)
    assert first["paper_diff"] == pytest.approx(69.3 - 54.7) and first["verdict"] == "reproduced"
    assert frame.iloc[1]["verdict"] == "inconclusive"
    assert frame.iloc[2]["verdict"] == "contradicted"  # expect '>' overrides the paper's side
    assert "t-interval" in first["method"]


def test_claims_of_unbuilt_tables_and_missing_seeds_are_said(tmp_path):
    _table5(tmp_path, {"observable (ours)": [0.60, 0.70, 0.65], "naive": [0.58, 0.675]})
    entries = [_pair("observable > naive", "observable (ours)", "naive"),
               {"table": 8, "claim": "interior optimum", "diff": "a",
                "terms": {"a": {"block": "", "row": "ScanNet (mIoU)", "column": "1.3", "metric": "miou"}}}]
    frame = claims.build_claims(claims.load_claims(_spec(tmp_path, entries)), tmp_path / "results", tables=[5])
    assert frame.iloc[0]["n_seeds"] == 2 and "seeds [2]" in frame.iloc[0]["note"]
    assert frame.iloc[1]["verdict"] == "not run" and "not built" in frame.iloc[1]["note"]


def test_run_terms_and_reported_ratios(tmp_path):
    _table5(tmp_path, {"observable (ours)": [0.60, 0.70, 0.65]})
    for s, v in enumerate([0.40, 0.50, 0.44]):
        write_metrics(tmp_path / f"runs/random/seed{s}/metrics.json", miou=v)
    observable = {"block": "masked self-distillation", "row": "observable (ours)", "column": "nuScenes",
                  "metric": "miou"}
    entries = [{"table": 5, "claim": "beats random", "diff": "a - b",
                "terms": {"a": observable, "b": {"run": "runs/random", "metric": "miou"}}},
               {"table": 5, "claim": "ratio", "diff": "a / b", "verdict": "reported",
                "terms": {"a": observable, "b": {"run": "runs/random", "metric": "miou"}}}]
    frame = claims.build_claims(claims.load_claims(_spec(tmp_path, entries)), tmp_path / "results",
                                runs_root=str(tmp_path), seeds=[0, 1, 2])
    assert frame.iloc[0]["per_seed"] == "20.00 20.00 21.00" and frame.iloc[0]["verdict"] == "reproduced"
    assert math.isnan(frame.iloc[0]["paper_diff"]) and "direction" in frame.iloc[0]["note"]
    assert frame.iloc[1]["verdict"] == "reported" and frame.iloc[1]["diff"] == pytest.approx(
        (0.60 / 0.40 + 0.70 / 0.50 + 0.65 / 0.44) / 3)


def test_a_claim_of_runs_only_is_decided_where_its_table_is_not_built(tmp_path):
    for s, (a, b) in enumerate([(0.60, 0.40), (0.70, 0.50), (0.65, 0.44)]):
        write_metrics(tmp_path / f"runs/dos/seed{s}/metrics.json", miou=a)
        write_metrics(tmp_path / f"runs/random/seed{s}/metrics.json", miou=b)
    runs_only = {"table": 1, "claim": "beats random", "diff": "a - b",
                 "terms": {"a": {"run": "runs/dos", "metric": "miou"}, "b": {"run": "runs/random", "metric": "miou"}}}
    cell = {"table": 1, "claim": "cell", "diff": "a",
            "terms": {"a": {"block": "linear probing", "row": "DOS (ours)", "column": "nuScenes", "metric": "miou"}}}
    loaded = claims.load_claims(_spec(tmp_path, [runs_only, cell]))
    assert [claims.decided_at(c, [5]) for c in loaded] == [True, False]
    frame = claims.build_claims(loaded, tmp_path / "results", runs_root=str(tmp_path), seeds=[0, 1, 2], tables=[5])
    assert frame.iloc[0]["verdict"] == "reproduced" and frame.iloc[1]["verdict"] == "not run"
    tables_needed, runs = claims.claim_inputs(_spec(tmp_path, [runs_only, cell]), "r", [0, 1], [5])
    assert tables_needed == [] and runs == ["r/runs/dos/seed0/metrics.json", "r/runs/dos/seed1/metrics.json",
                                            "r/runs/random/seed0/metrics.json", "r/runs/random/seed1/metrics.json"]
    # --only: one table's claims alone (the workflow's table_claims): a run-only claim of another table is out
    assert claims.claim_inputs(_spec(tmp_path, [runs_only, cell]), "r", [0, 1], [5], only=True) == ([], [])
    assert claims.claim_inputs(_spec(tmp_path, [runs_only, cell]), "r", [0], [1], only=True) == (
        [1], ["r/runs/dos/seed0/metrics.json", "r/runs/random/seed0/metrics.json"])


def test_the_command_writes_csv_and_md(tmp_path):
    _table5(tmp_path, {"observable (ours)": [0.60, 0.70, 0.65], "naive": [0.58, 0.675, 0.635]})
    spec = _spec(tmp_path, [_pair("observable > naive", "observable (ours)", "naive")])
    parser = argparse.ArgumentParser()
    claims.configure(parser)
    assert claims.run(parser.parse_args([str(spec), "--results", str(tmp_path / "results"), "--scale", "mini"])) == 0
    md = (tmp_path / "results" / "claims.md").read_text()
    assert "observable > naive" in md and "reproduced" in md and "95% CI" in md and "synthetic benchmark" in md
    # the half-width column: t(2) x sd of the paired differences (2.0, 2.5, 1.5 points) / sqrt(3) = 1.24
    row = next(line for line in md.splitlines() if "observable > naive" in line)
    assert [cell.strip() for cell in row.split("|")][6] == "1.24"
    assert (tmp_path / "results" / "claims.csv").read_text().startswith("table,claim,paper_diff,diff,ci_low")
    figure = tmp_path / "figures" / "claims.png"
    args = [str(spec), "--results", str(tmp_path / "results"), "--scale", "mini", "--figure", str(figure)]
    assert claims.run(parser.parse_args(args)) == 0
    first = figure.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and len(first) > 5000
    assert claims.run(parser.parse_args(args)) == 0 and figure.read_bytes() == first   # byte-reproducible


def test_bad_claims_specs_name_the_entry(tmp_path):
    good = _pair("x", "naive", "token jitter")
    cases = [({"claims": []}, "non-empty list"),
             ({"claims": [{**good, "colour": 1}]}, r"claims\[0\]: unknown keys"),
             ({"claims": [{k: v for k, v in good.items() if k != "diff"}]}, "missing key 'diff'"),
             ({"claims": [good, good]}, "listed twice"),
             ({"claims": [{**good, "expect": ">="}]}, "'expect'"),
             ({"claims": [{**good, "terms": {"max": good["terms"]["a"]}, "diff": "max"}]}, "not an identifier"),
             ({"claims": [{**good, "terms": {"a": {"run": "x"}}, "diff": "a"}]}, "run and metric")]
    for i, (content, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(content))
        with pytest.raises(DosError, match=message):
            claims.load_claims(path)


def test_the_repository_claims_name_real_cells_and_cover_the_issue():
    """Every cell term of workflow/claims.yaml is a cell of the paper's tables, and every table the claims
    must cover has at least one claim."""
    checked = claims.load_claims(REPO_CLAIMS)
    known = {(int(r["table"]), *(r[k] for k in KEY)) for _, r in paper_numbers().iterrows()}
    for claim in checked:
        for term in claim["terms"].values():
            if "run" not in term:
                assert (term["table"], *(term[k] for k in KEY)) in known, (claim["claim"], term)
    assert {c["table"] for c in checked} >= {1, 2, 5, 8, 9, 10, 11, 12}
    assert sum(c["table"] == 5 for c in checked) == 6


# --- Stein's two-stage fixed-width interval -------------------------------------------------------------------


def test_seeds_for_half_width_stein_and_forecast_by_hand():
    # Stein: N = max(n0, floor((t(n0-1) s0 / d)^2) + 1); t(9) = 2.2622
    assert claims.seeds_for_half_width(1.931, 1.0, first_stage=10) == math.floor((2.2622 * 1.931) ** 2) + 1 == 20
    assert claims.seeds_for_half_width(0.41, 1.0, first_stage=10) == 10           # never fewer than the first stage
    assert claims.seeds_for_half_width(1.0, 0.5, first_stage=5) == math.floor((2.7764 * 2) ** 2) + 1 == 31
    # forecast: the smallest n whose t-interval is that narrow at this sd (t(11) x 1.57 / sqrt(12) = 0.9975)
    assert claims.seeds_for_half_width(1.57, 1.0) == 12
    assert claims.t_quantile_975(10) * 1.57 / math.sqrt(11) > 1.0
    with pytest.raises(ValueError):
        claims.seeds_for_half_width(1.0, 0.0)


def test_stein_interval_takes_its_sd_from_the_first_stage_only():
    first = [1.0, 2.0, 3.0]                                # sd 1
    wild = first + [40.0, -40.0, 0.0]                      # a second stage with a huge spread
    mean, low, high = claims.stein_interval(wild, first_stage=3)
    assert mean == pytest.approx(1.0)
    assert (high - low) / 2 == pytest.approx(4.3027 * 1.0 / math.sqrt(6))   # t(2) x s0 / sqrt(n), not the sd of 6
    # with n = n0 it is the t-interval
    assert claims.stein_interval(first, 3) == pytest.approx(claims.t_interval(first))
    assert math.isnan(claims.stein_interval(first[:2], 3)[1])            # first stage not complete


def test_the_stein_procedure_has_its_coverage_and_its_half_width():
    """Simulated measurements: stage 1 of n0 normal differences, N from its sd, stage 2 up to N. The interval
    must cover the true mean 95 % of the time and never be wider than d. (Taking the sd over all N instead breaks
    the width guarantee; t(N - 1) instead of t(n0 - 1) breaks the coverage, to about 0.92 here.)"""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(12)
    mu, sigma, n0, d, trials = 0.7, 1.4, 5, 1.0, 4000
    covered, widest, sizes = 0, 0.0, []
    for _ in range(trials):
        first = list(rng.normal(mu, sigma, n0))
        total = claims.seeds_for_half_width(statistics.stdev(first), d, first_stage=n0)
        values = first + list(rng.normal(mu, sigma, total - n0))
        mean, low, high = claims.stein_interval(values, n0)
        covered += low <= mu <= high
        widest = max(widest, (high - low) / 2)
        sizes.append(total)
    assert widest <= d
    assert 0.94 <= covered / trials <= 0.96          # binomial sd at 4000 trials: 0.0034
    assert min(sizes) == n0 and max(sizes) > 3 * n0  # N really follows the first stage's sd


def test_claims_with_a_first_stage_are_steins_and_say_the_seeds_needed(tmp_path):
    seeds = [0, 1, 2, 3, 4]
    a = [0.60, 0.70, 0.65, 0.64, 0.70]
    b = [0.58, 0.675, 0.635, 0.60, 0.71]   # a - b: +2.0 +2.5 +1.5 +4.0 -1.0 at seeds 0-4
    _table5(tmp_path, {"observable (ours)": a, "naive": b}, seeds=seeds)
    loaded = claims.load_claims(_spec(tmp_path, [_pair("observable > naive", "observable (ours)", "naive")]))
    # the first stage is the first n0 of --seeds (here 3, 4, 0: not the lowest seed numbers)
    frame = claims.build_claims(loaded, tmp_path / "results", seeds=[3, 4, 0, 1, 2], first_stage=3)
    row = frame.iloc[0]
    half = 4.3027 * statistics.stdev([4.0, -1.0, 2.0]) / math.sqrt(5)
    assert row["diff"] == pytest.approx(9.0 / 5)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(half, rel=1e-4)
    assert row["seeds"] == "3 4 0 1 2" and row["method"].startswith("paired Stein")
    assert row["seeds_needed"] == math.floor((4.3027 * statistics.stdev([4.0, -1.0, 2.0])) ** 2) + 1 == 118
    assert row["verdict"] == "inconclusive" and "needs 118 seeds (Stein), 5 run" in row["note"]
    frame = claims.build_claims(loaded, tmp_path / "results", seeds=[2, 0, 1, 3, 4], first_stage=3)
    row = frame.iloc[0]
    half = 4.3027 * statistics.stdev([1.5, 2.0, 2.5]) / math.sqrt(5)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(half, rel=1e-4)
    assert row["seeds_needed"] == math.floor((4.3027 * 0.5 / 1.0) ** 2) + 1 == 5
    assert row["verdict"] == "reproduced" and row["note"] == ""
    # a tighter target asks for more seeds than were run, and says so
    frame = claims.build_claims(loaded, tmp_path / "results", seeds=[2, 0, 1, 3, 4], first_stage=3, half_width=0.5)
    assert frame.iloc[0]["seeds_needed"] == 19 and "needs 19 seeds (Stein), 5 run" in frame.iloc[0]["note"]
    # without a first stage: t-interval over the 5, and a forecast
    plain = claims.build_claims(loaded, tmp_path / "results", seeds=seeds).iloc[0]
    assert plain["method"] == claims.METHOD
    assert plain["ci_low"] == pytest.approx(claims.t_interval([2.0, 2.5, 1.5, 4.0, -1.0])[1])
    assert plain["seeds_needed"] == claims.seeds_for_half_width(statistics.stdev([2.0, 2.5, 1.5, 4.0, -1.0]), 1.0)


def test_an_incomplete_first_stage_gives_no_interval_and_bad_stages_are_errors(tmp_path):
    _table5(tmp_path, {"observable (ours)": [0.60, 0.70], "naive": [0.58, 0.675]}, seeds=(0, 1))
    loaded = claims.load_claims(_spec(tmp_path, [_pair("observable > naive", "observable (ours)", "naive")]))
    row = claims.build_claims(loaded, tmp_path / "results", seeds=[0, 1, 2], first_stage=3).iloc[0]
    assert math.isnan(row["ci_low"]) and math.isnan(row["diff"]) and row["verdict"] == "not run"
    assert "first stage incomplete" in row["note"] and "[2]" in row["note"]
    # a second-stage seed missing: the interval stands, over the seeds there are, with the first stage's sd
    row = claims.build_claims(loaded, tmp_path / "results", seeds=[0, 1, 2], first_stage=2).iloc[0]
    assert row["n_seeds"] == 2 and "seeds [2] lack" not in row["note"] and not math.isnan(row["ci_low"])
    with pytest.raises(DosError, match="listed twice"):
        claims.build_claims(loaded, tmp_path / "results", seeds=[0, 0, 1], first_stage=2)
    with pytest.raises(DosError, match="--first-stage 1"):
        claims.build_claims(loaded, tmp_path / "results", seeds=[0, 1], first_stage=1)
    with pytest.raises(DosError, match="at least that many --seeds"):
        claims.build_claims(loaded, tmp_path / "results", seeds=[0, 1], first_stage=3)
    with pytest.raises(DosError, match="--half-width -1"):
        claims.build_claims(loaded, tmp_path / "results", seeds=[0, 1], half_width=-1)


def test_the_markdown_names_the_stein_method(tmp_path):
    _table5(tmp_path, {"observable (ours)": [0.60, 0.70, 0.65], "naive": [0.58, 0.675, 0.635]})
    spec = _spec(tmp_path, [_pair("observable > naive", "observable (ours)", "naive")])
    parser = argparse.ArgumentParser()
    claims.configure(parser)
    args = [str(spec), "--results", str(tmp_path / "results"), "--seeds", "0", "1", "2", "--first-stage", "3",
            "--half-width", "0.5"]
    assert claims.run(parser.parse_args(args)) == 0
    md = (tmp_path / "results" / "claims.md").read_text()
    assert "Stein two-stage interval, 95% (sd from the first 3 seeds)" in md and "seeds for half-width 0.5" in md
    row = next(line for line in md.splitlines() if "observable > naive" in line)
    assert [cell.strip() for cell in row.split("|")][8] == str(math.floor((4.3027 * 0.5 / 0.5) ** 2) + 1)
