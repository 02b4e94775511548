"""`dos report claims`: the paper's qualitative claims, each decided by a confidence interval over seeds.

A claims spec (workflow/claims.yaml) lists one entry per claim: named terms, each a cell of a results table
(table, block, row, column, metric) or a run of its own (run, metric), and an expression over them whose sign
is the claim::

    claims:
      - table: 5
        claim: observable > naive
        terms:
          a: {block: masked self-distillation, row: observable (ours), column: nuScenes, metric: miou}
          b: {block: masked self-distillation, row: naive, column: nuScenes, metric: miou}
        diff: a - b

`diff` is evaluated once per seed on the seed's values (paired by seed: runs of one seed share the data, the
subsets and the initialisation seed), and once on the paper's numbers (`paper_diff`; empty when a term has no
paper number). The 95% confidence interval of the mean difference is Student's t-interval over the seeds,
mean ± t(0.975, n - 1) · sd / sqrt(n), or, with a first stage (`--first-stage n0`), Stein's two-stage
fixed-width interval (below). The verdict is *reproduced* when the interval excludes 0 on the paper's
side, *contradicted* when it excludes 0 on the other side, and *inconclusive* when it covers 0; a claim whose
direction is given by `expect` (">" the default, or "<") uses that side instead of the paper's. A claim some
of whose runs are missing at the scale (a dataset not mapped) is *not run*; so is a claim of a table the scale
does not build, unless every term of it is a run of its own (then its runs are made and it is decided). Entries with `verdict: reported`
(a ratio, say) get an interval and no verdict.

Stein's two-stage interval (Stein 1945) is the one that guarantees a half-width: a t-interval extended "until it
is narrow enough" loses its coverage, and a fixed n decided in advance may land wide (the sd of a paired
difference is itself uncertain). The first n0 seeds of `--seeds` are the first stage; its sd s0 alone fixes the
number of seeds a half-width d needs, N = max(n0, floor((t(0.975, n0 - 1) · s0 / d)^2) + 1) (`seeds_needed`),
and the interval over all n seeds is mean ± t(0.975, n0 - 1) · s0 / sqrt(n). For normal per-seed differences
and a claim linear in its terms, its coverage is exactly 95 % whenever n depends on the first stage's sds alone
(the sample mean of normal data is independent of its sample covariance), so running N seeds, N the largest over
the claims, gives every claim a half-width below d. Each interval is 95 % on its own (no multiplicity
correction). The claims table shows each claim's N; run that many seeds (the largest over the claims) and decide
on them. Without a first stage, `seeds_needed` is a forecast at the observed sd: the n whose t-interval
half-width would be d.

Expressions use + - * /, numbers, max(...) and min(...), and the term names: nothing else is evaluated.
Values are in % (metrics.json fractions x 100), read from each cell's per-seed runs as listed in the table CSV.
"""

from __future__ import annotations

import argparse
import ast
import math
import re
import statistics
from pathlib import Path
from typing import Any

import yaml

from dos.errors import DosError
from dos.report.tables import KEY, _text, read_metric, read_table_csv, scale_note
from dos.utils.io import write_text

COLUMNS = ["table", "claim", "paper_diff", "diff", "ci_low", "ci_high", "n_seeds", "verdict", "seeds", "method",
           "per_seed", "seeds_needed", "note"]
METHOD = "paired t-interval over seeds, 95%"
DEFAULT_HALF_WIDTH = 1.0  # the mIoU half-width the mini measurement must resolve (issue 12's bar)


def stein_method(first_stage: int) -> str:
    return f"paired Stein two-stage interval, 95% (sd from the first {first_stage} seeds)"
VERDICTS = ("reproduced", "inconclusive", "contradicted", "not run", "reported")

# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30; beyond, the normal-approximation expansion
# (Abramowitz & Stegun 26.7.5) is accurate to 1e-4.
_T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
         2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
         2.0518, 2.0484, 2.0452, 2.0423]


def t_quantile_975(df: int) -> float:
    """t(0.975, df), the factor of a two-sided 95% t-interval."""
    if df < 1:
        raise ValueError(f"a t-interval needs at least 2 values (df >= 1), got df = {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval of the mean; NaN bounds for fewer than two values."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = t_quantile_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def seeds_for_half_width(sd: float, half_width: float, first_stage: int | None = None) -> int:
    """Seeds a 95% interval of half-width `half_width` needs at the sd `sd`. With `first_stage` (n0, the seeds
    `sd` came from): Stein's N = max(n0, floor((t(n0 - 1) · sd / half_width)^2) + 1), exact. Without: the
    smallest n >= 2 with t(n - 1) · sd / sqrt(n) <= half_width, a forecast that takes `sd` as known."""
    if half_width <= 0 or math.isnan(sd):
        raise ValueError(f"seeds_for_half_width: half_width must be > 0 and sd a number (got {half_width}, {sd})")
    if first_stage is not None:
        return max(first_stage, math.floor((t_quantile_975(first_stage - 1) * sd / half_width) ** 2) + 1)
    n = 2
    while t_quantile_975(n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
    return n


def stein_interval(values: list[float], first_stage: int) -> tuple[float, float, float]:
    """(mean, low, high) of Stein's two-stage 95% interval: the mean of all values ± t(n0 - 1) · s0 / sqrt(n),
    s0 the sd of the first `first_stage` values (the first stage). NaN bounds when the first stage is not
    complete (fewer than `first_stage` values, or fewer than two)."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / len(values)
    if first_stage < 2 or len(values) < first_stage:
        return mean, math.nan, math.nan
    half = t_quantile_975(first_stage - 1) * statistics.stdev(values[:first_stage]) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def verdict(low: float, high: float, direction: float) -> str:
    """reproduced / contradicted / inconclusive for an interval and the claimed sign (+1 or -1)."""
    if math.isnan(low) or math.isnan(high) or direction == 0:
        return "inconclusive"
    if low > 0 or high < 0:
        return "reproduced" if (low > 0) == (direction > 0) else "contradicted"
    return "inconclusive"


_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd,
            ast.Constant, ast.Name, ast.Load, ast.Call)


def check_expression(text: str, names: set[str], where: str) -> ast.Expression:
    """Parse `text`; only arithmetic, numbers, max/min and the given names are allowed."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise DosError(f"{where}: cannot parse diff {text!r} ({error.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise DosError(f"{where}: diff {text!r} uses {type(node).__name__}; only + - * /, numbers, max, min "
                           "and the term names are allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in ("max", "min")
                                               and not node.keywords):
            raise DosError(f"{where}: diff {text!r} calls something other than max(...) or min(...)")
        if isinstance(node, ast.Name) and node.id not in names | {"max", "min"}:
            raise DosError(f"{where}: diff {text!r} names {node.id!r}, which is not a term ({sorted(names)})")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise DosError(f"{where}: diff {text!r} holds the non-number {node.value!r}")
    return tree


def evaluate(tree: ast.Expression, values: dict[str, float]) -> float:
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        if isinstance(node, ast.Call):
            args = [walk(arg) for arg in node.args]
            return max(args) if node.func.id == "max" else min(args)
        left, right = walk(node.left), walk(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right if right != 0 else math.nan
    return walk(tree)


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a claims spec; every error names the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise DosError(f"{path}: claims spec not found")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or set(spec) != {"claims"} or not isinstance(spec["claims"], list) \
            or not spec["claims"]:
        raise DosError(f"{path}: a claims spec is a mapping with one key, claims: a non-empty list")
    checked, seen = [], set()
    for i, entry in enumerate(spec["claims"]):
        where = f"{path}: claims[{i}]"
        if not isinstance(entry, dict):
            raise DosError(f"{where}: each claim is a mapping with table, claim, terms, diff")
        unknown = set(entry) - {"table", "claim", "terms", "diff", "expect", "verdict", "note"}
        if unknown:
            raise DosError(f"{where}: unknown keys {sorted(unknown)}")
        for name in ("table", "claim", "terms", "diff"):
            if name not in entry:
                raise DosError(f"{where}: missing key '{name}'")
        if not isinstance(entry["table"], int) or not isinstance(entry["claim"], str):
            raise DosError(f"{where}: 'table' must be a table number and 'claim' a text")
        if (entry["table"], entry["claim"]) in seen:
            raise DosError(f"{where}: claim {entry['claim']!r} of Table {entry['table']} is listed twice")
        seen.add((entry["table"], entry["claim"]))
        terms = entry["terms"]
        if not isinstance(terms, dict) or not terms:
            raise DosError(f"{where}: 'terms' must map names to cells or runs")
        checked_terms = {}
        for name, term in terms.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)) or name in ("max", "min"):
                raise DosError(f"{where}: term name {name!r} is not an identifier (or is max/min)")
            if not isinstance(term, dict):
                raise DosError(f"{where}: term {name!r} must be a mapping")
            if "run" in term:
                if set(term) - {"run", "metric"} or "metric" not in term:
                    raise DosError(f"{where}: term {name!r}: a run term has exactly the keys run and metric")
                checked_terms[name] = {"run": str(term["run"]).strip("/"), "metric": str(term["metric"])}
            else:
                extra = set(term) - {*KEY, "table"}
                if extra or not {"row", "column", "metric"} <= set(term):
                    raise DosError(f"{where}: term {name!r}: a cell term has the keys block, row, column, metric "
                                   "(and optionally table)")
                checked_terms[name] = {"table": int(term.get("table", entry["table"])),
                                       **{key: _text(term.get(key)) for key in KEY}}
        expect = entry.get("expect")
        if expect not in (None, ">", "<"):
            raise DosError(f"{where}: 'expect' must be '>' or '<', got {expect!r}")
        if entry.get("verdict") not in (None, "reported"):
            raise DosError(f"{where}: 'verdict' may only be 'reported' (an interval without a verdict)")
        tree = check_expression(str(entry["diff"]), set(checked_terms), where)
        checked.append({"table": entry["table"], "claim": entry["claim"], "terms": checked_terms,
                        "diff": str(entry["diff"]), "tree": tree, "expect": expect,
                        "reported": entry.get("verdict") == "reported", "note": str(entry.get("note", ""))})
    return checked


_SEED = re.compile(r"(?:^|/)seed(\d+)(?:/|$)")


def _seed_of(run_path: str) -> int:
    found = _SEED.search(run_path)
    if not found:
        raise DosError(f"{run_path}: a run path must hold a seed<N> folder to pair runs by seed")
    return int(found.group(1))


class _Sources:
    """Per-seed values (%) of each term: from the table CSVs' `runs` columns, or from run folders."""

    def __init__(self, results: Path, runs_root: str | None, seeds: list[int] | None, base: Path):
        self.results, self.runs_root, self.seeds, self.base = results, runs_root, seeds, base
        self.tables: dict[int, Any] = {}

    def _table(self, table: int):
        if table not in self.tables:
            self.tables[table] = read_table_csv(self.results / f"table{table}.csv")
        return self.tables[table]

    def values(self, term: dict[str, Any], where: str) -> tuple[dict[int, float], float]:
        """({seed: value %}, paper value % or NaN)."""
        if "run" in term:
            if self.runs_root is None or not self.seeds:
                raise DosError(f"{where}: run term {term['run']!r} needs --runs-root and --seeds")
            paths = [f"{self.runs_root.rstrip('/')}/{term['run']}/seed{seed}/metrics.json" for seed in self.seeds]
            present = [p for p in paths if (self.base / p).is_file()]
            return {_seed_of(p): read_metric(self.base / p, term["metric"]) for p in present}, math.nan
        frame = self._table(term["table"])
        match = frame
        for key in KEY:
            match = match[match[key] == term[key]]
        if match.empty:
            raise DosError(f"{where}: {' | '.join(term[k] for k in KEY)!r} is not a cell of "
                           f"{self.results / ('table%d.csv' % term['table'])}")
        row = match.iloc[0]
        runs = [run for run in str(row["runs"]).split(";") if run]
        return ({_seed_of(run): read_metric(self.base / run, term["metric"]) for run in runs},
                float(row["paper"]))


def decided_at(claim: dict[str, Any], tables: list[int]) -> bool:
    """Whether a scale that builds `tables` decides `claim`: its table is built there, or every term is a run
    of its own (those runs are the claims rule's inputs, so they are made wherever the claim is listed)."""
    return claim["table"] in tables or all("run" in term for term in claim["terms"].values())


def claim_inputs(path: str | Path, runs_root: str, seeds: list[int], tables: list[int], only: bool = False
                 ) -> tuple[list[int], list[str]]:
    """What `dos report claims --tables ...` reads at a scale (the workflow's inputs): the numbers of the tables
    whose CSVs its decided claims read, and the metrics.json of every seed of their run terms. `only`: the
    claims of `tables` alone (`--only`)."""
    claims = [c for c in load_claims(path) if (c["table"] in tables if only else decided_at(c, tables))]
    needed = sorted({term["table"] for c in claims for term in c["terms"].values() if "run" not in term})
    runs = [f"{runs_root.rstrip('/')}/{term['run']}/seed{seed}/metrics.json"
            for c in claims for term in c["terms"].values() if "run" in term for seed in seeds]
    return needed, list(dict.fromkeys(runs))


def build_claims(claims: list[dict[str, Any]], results: Path, runs_root: str | None = None,
                 seeds: list[int] | None = None, base: str | Path = ".", scale: str = "mini",
                 tables: list[int] | None = None, first_stage: int | None = None,
                 half_width: float = DEFAULT_HALF_WIDTH):
    """One row per claim (COLUMNS). With `tables`, claims of other tables are *not run* (their tables are not
    built at this scale). With `first_stage` (n0), the intervals are Stein's, the first stage being the first
    n0 of `seeds`; `seeds_needed` is the seeds a half-width of `half_width` needs (module docstring)."""
    import pandas as pd

    if first_stage is not None:
        if first_stage < 2:
            raise DosError(f"--first-stage {first_stage}: the first stage needs at least 2 seeds (it estimates an sd)")
        if seeds and len(set(seeds)) != len(seeds):
            raise DosError(f"--seeds {' '.join(map(str, seeds))}: a seed is listed twice")
        if not seeds or len(seeds) < first_stage:
            raise DosError(f"--first-stage {first_stage}: give at least that many --seeds (got {len(seeds or [])}); "
                           "the first stage is the first n0 of them")
    if not half_width > 0:
        raise DosError(f"--half-width {half_width}: must be positive")
    stage_one = set(seeds[:first_stage]) if first_stage is not None else set()
    method = METHOD if first_stage is None else stein_method(first_stage)
    sources = _Sources(Path(results), runs_root, seeds, Path(base))
    records = []
    for claim in claims:
        where = f"claim {claim['claim']!r} (Table {claim['table']})"
        if tables is not None and not decided_at(claim, tables):
            records.append({"table": claim["table"], "claim": claim["claim"], "paper_diff": math.nan,
                            "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 0,
                            "verdict": "not run", "seeds": "", "method": method, "per_seed": "",
                            "seeds_needed": "",
                            "note": f"Table {claim['table']} is not built at this scale (scales.{scale}.main_tables)"})
            continue
        per_term, paper = {}, {}
        for name, term in claim["terms"].items():
            per_term[name], paper[name] = sources.values(term, where)
        common = sorted(set.intersection(*(set(v) for v in per_term.values())))
        missing = sorted(set().union(*(set(v) for v in per_term.values())) - set(common))
        paper_diff = math.nan if any(math.isnan(v) for v in paper.values()) else evaluate(claim["tree"], paper)
        if first_stage is not None:  # the first stage's seeds first: stein_interval takes its sd from them
            common = [seed for seed in seeds if seed in stage_one and seed in common] + \
                     [seed for seed in common if seed not in stage_one]
        diffs = [evaluate(claim["tree"], {name: per_term[name][seed] for name in per_term}) for seed in common]
        incomplete = first_stage is not None and len([s for s in common if s in stage_one]) < first_stage
        if first_stage is None:
            mean, low, high = t_interval(diffs)
            sd = statistics.stdev(diffs) if len(diffs) >= 2 else math.nan
        elif incomplete:  # no interval, and no mean that could be read as a measurement
            mean, low, high, sd = math.nan, math.nan, math.nan, math.nan
        else:
            mean, low, high = stein_interval(diffs, first_stage)
            sd = statistics.stdev(diffs[:first_stage])
        needed = "" if math.isnan(sd) or not diffs or claim["reported"] else \
            seeds_for_half_width(sd, half_width, first_stage)
        direction = {">": 1.0, "<": -1.0}.get(claim["expect"]) if claim["expect"] else \
            (math.copysign(1.0, paper_diff) if not math.isnan(paper_diff) and paper_diff != 0 else 1.0)
        if not common or incomplete:
            outcome = "not run"
        elif claim["reported"]:
            outcome = "reported"
        else:
            outcome = verdict(low, high, direction)
        notes = [claim["note"]] if claim["note"] else []
        if missing:
            notes.append(f"seeds {missing} lack a term's run and are left out")
        if incomplete and common:
            notes.append(f"first stage incomplete: a term lacks runs of seeds {sorted(stage_one - set(common))}, "
                         "so no Stein interval")
        elif first_stage is not None and needed and len(diffs) < needed:
            notes.append(f"half-width {half_width:g} needs {needed} seeds (Stein), {len(diffs)} run")
        if claim["expect"] is None and (math.isnan(paper_diff) or paper_diff == 0):
            notes.append("direction: '>' (the paper gives no difference)")
        records.append({"table": claim["table"], "claim": claim["claim"], "paper_diff": paper_diff, "diff": mean,
                        "ci_low": low, "ci_high": high, "n_seeds": len(common), "verdict": outcome,
                        "seeds": " ".join(map(str, common)), "method": method,
                        "per_seed": " ".join(f"{d:.2f}" for d in diffs), "seeds_needed": needed,
                        "note": "; ".join(notes)})
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    frame.attrs["scale"] = scale
    return frame


def _fmt(value: float, sign: bool = True) -> str:
    return "" if value is None or math.isnan(value) else (f"{value:+.2f}" if sign else f"{value:.2f}")


def _method_text(frame) -> str:
    methods = [m for m in dict.fromkeys(frame["method"]) if m]
    return "; ".join(methods) if methods else METHOD


def render_markdown(frame, scale: str, half_width: float = DEFAULT_HALF_WIDTH) -> str:
    import pandas as pd

    shown = pd.DataFrame({
        "table": frame["table"].astype(str), "claim": frame["claim"],
        "paper diff": [_fmt(v) for v in frame["paper_diff"]], "reproduced diff": [_fmt(v) for v in frame["diff"]],
        "95% CI": [f"[{_fmt(a)}, {_fmt(b)}]" if not math.isnan(a) else "" for a, b in zip(frame["ci_low"],
                                                                                          frame["ci_high"])],
        "half-width": [_fmt((b - a) / 2, sign=False) for a, b in zip(frame["ci_low"], frame["ci_high"])],
        "seeds": frame["n_seeds"].astype(int).astype(str),
        f"seeds for half-width {half_width:g}": [str(v) for v in frame["seeds_needed"]],
        "verdict": frame["verdict"], "note": frame["note"],
    })
    counts = frame["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    stein = any(str(m).startswith("paired Stein") for m in frame["method"])
    needed_text = ("Seeds for half-width: Stein's N from the first stage's sd; the interval meets it once that "
                   "many seeds are run." if stein else
                   "Seeds for half-width: a forecast at the observed sd (the n whose t-interval would be that "
                   "narrow); a guaranteed half-width takes a first stage (`--first-stage`, Stein's procedure).")
    parts = [f"### The paper's claims (scale {scale})", "",
             f"{summary}. Differences in points (%) of the claim's metric (mIoU, or NDS / mAP for Table 2); "
             f"{_method_text(frame)} (paired by seed). *reproduced*: the interval "
             "excludes 0 on the paper's side; *contradicted*: on the other side; *inconclusive*: it covers 0. "
             "The half-width (half the interval) is what the seeds resolve: it shrinks as "
             + ("1 / sqrt(n) once the first stage is run. " if stein else "t(n - 1) / sqrt(n). ") + needed_text, ""]
    if scale_note(scale):
        parts += [f"> **Note.** {scale_note(scale)}", ""]
    parts += [shown.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="claims spec YAML (workflow/claims.yaml)")
    parser.add_argument("--results", required=True, help="folder of the scale's tableN.csv (results/<scale>)")
    parser.add_argument("--scale", default="mini", help="the scale (shown in the outputs)")
    parser.add_argument("--runs-root", default=None, help="for run terms: <runs-root>/<run>/seed<s>/metrics.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="for run terms: the seeds")
    parser.add_argument("--base", default=".", help="folder the run paths start from (default: .)")
    parser.add_argument("--out-dir", default=None, help="where claims.{csv,md} go (default: --results)")
    parser.add_argument("--tables", type=int, nargs="+", default=None,
                        help="the tables built at this scale; claims of other tables are reported as not run")
    parser.add_argument("--figure", default=None, help="also draw the claims as a forest plot (.png or .svg)")
    parser.add_argument("--only", action="store_true", help="list only the claims of --tables (one table's claims)")
    parser.add_argument("--first-stage", type=int, default=None, metavar="N0",
                        help="Stein's two-stage intervals: the first N0 of --seeds are the first stage, whose sd "
                             "fixes each claim's half-width (module docstring); default: t-intervals")
    parser.add_argument("--half-width", type=float, default=DEFAULT_HALF_WIDTH,
                        help="the half-width the seeds_needed column is for (default: %(default)s points)")


def run(args: argparse.Namespace) -> int:
    from dos.errors import DosError

    claims = load_claims(args.spec)
    if args.only:
        if not args.tables:
            raise DosError("--only lists the claims of --tables: give --tables")
        claims = [c for c in claims if c["table"] in args.tables]
    frame = build_claims(claims, Path(args.results), args.runs_root, args.seeds, args.base,
                         args.scale, args.tables, args.first_stage, args.half_width)
    out = Path(args.out_dir or args.results)
    write_text(out / "claims.csv", frame.to_csv(index=False, lineterminator="\n"))
    write_text(out / "claims.md", render_markdown(frame, args.scale, args.half_width))
    print(out / "claims.csv")
    print(out / "claims.md")
    if args.figure:
        from dos.report.figures import claims_chart

        print(claims_chart(frame, args.figure, args.scale))
    counts = frame["verdict"].value_counts().to_dict()
    print(f"claims ({args.scale}): " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return 0
