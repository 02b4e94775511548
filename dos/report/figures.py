"""`dos report figure`: the paper's comparison figures, from results/tableN.csv files.

--kind bars   a Figure-1-style grouped bar chart: one group per dataset (column), for each method (row)
              the reproduced mean (solid, ± std) beside the paper's number (hatched).
--kind sweep  a sweep curve: x = the swept value (alpha, prototype count, label fraction: the table's
              rows or columns), y = reproduced mean ± std, with the paper's values as a dashed line;
              one panel per block (Table 10: nuScenes, ScanNet).

Figures are byte-reproducible: Agg canvas without pyplot, no software/date metadata, fixed SVG hash salt.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from dos.errors import DosError
from dos.report.tables import read_table_csv, scale_note
from dos.utils.io import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

RC = {"svg.hashsalt": "dos-report", "font.size": 8, "figure.dpi": 110, "axes.spines.top": False,
       "axes.spines.right": False}
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def load_tables(paths: Sequence[str | Path]) -> "pd.DataFrame":
    """Concatenate results tables (in the given order)."""
    import pandas as pd

    if not paths:
        raise DosError("no table CSV given")
    return pd.concat([read_table_csv(path) for path in paths], ignore_index=True)


def _unique(values) -> list:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def _select(frame: "pd.DataFrame", block: str | None, metric: str) -> "pd.DataFrame":
    picked = frame[frame["metric"] == metric]
    if block is not None:
        picked = picked[picked["block"] == block]
    if picked.empty:
        blocks = ", ".join(repr(b) for b in _unique(frame["block"]))
        metrics = ", ".join(_unique(frame["metric"]))
        raise DosError(f"no cells with metric {metric!r}" + (f" in block {block!r}" if block is not None else "")
                       + f" (blocks: {blocks}; metrics: {metrics})")
    return picked


def _note(frame: "pd.DataFrame") -> str:
    scales = _unique(frame["scale"])
    return " ".join(scale_note(scale) for scale in scales if scale_note(scale))


def save_figure(fig: "Figure", path: str | Path) -> Path:
    """Write a .png or .svg atomically, without the metadata (software, date) that would change its bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        metadata = {"Software": None}
    elif suffix == ".svg":
        metadata = {"Date": None, "Creator": None}
    else:
        raise DosError(f"{path}: figures are .png or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix[1:], metadata=metadata)
    return path


def new_figure(width: float, height: float) -> "Figure":
    """A constrained-layout figure on its own Agg canvas (no pyplot: no global state, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def bar_chart(frame: "pd.DataFrame", out: str | Path, block: str | None = None, metric: str = "miou",
              rows: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Grouped bars per dataset: reproduced (solid, ± std) beside the paper (hatched), one colour per method.

    `rows` picks the methods (default: those with a reproduced value); with several tables the
    method label gets its table number.
    """
    import matplotlib

    picked = _select(frame, block, metric)
    several = len(_unique(picked["table"])) > 1
    picked = picked.assign(method=[f"{row} (Table {t})" if several else row
                                   for row, t in zip(picked["row"], picked["table"])])
    if rows:
        unknown = [row for row in rows if row not in set(picked["row"])]
        if unknown:
            raise DosError(f"rows {unknown} not found (rows: {', '.join(_unique(picked['row']))})")
        picked = picked[picked["row"].isin(rows)]
    else:
        picked = picked[picked["method"].isin(set(picked.loc[picked["n_seeds"] > 0, "method"]))]
        if picked.empty:
            raise DosError("no reproduced cells to draw (pass --rows to draw the paper's numbers alone)")
    methods, datasets = _unique(picked["method"]), _unique(picked["column"])
    cell = {(m, d): r for m, d, r in zip(picked["method"], picked["column"], picked.itertuples())}

    with matplotlib.rc_context(RC):
        fig = new_figure(max(4.0, 1.5 + len(datasets) * max(0.9, 0.45 * len(methods))), 3.6)
        ax = fig.add_subplot()
        width = 0.8 / (2 * len(methods))
        labelled: set[str] = set()

        def label(text: str) -> str | None:  # one legend entry per method and kind
            if text in labelled:
                return None
            labelled.add(text)
            return text

        for i, method in enumerate(methods):
            color = _COLORS[i % len(_COLORS)]
            for j, dataset in enumerate(datasets):
                r = cell.get((method, dataset))
                if r is None:
                    continue
                x = j - 0.4 + width * (2 * i + 0.5)
                if not math.isnan(r.reproduced_mean):
                    err = None if math.isnan(r.reproduced_std) else r.reproduced_std
                    ax.bar(x, r.reproduced_mean, width, yerr=err, color=color, capsize=2,
                           label=label(f"{method}: reproduced"))
                if not math.isnan(r.paper):
                    ax.bar(x + width, r.paper, width, color=color, alpha=0.35, hatch="//", edgecolor=color,
                           label=label(f"{method}: paper"))
        ax.set_xticks(range(len(datasets)), datasets, rotation=20 if len(datasets) > 4 else 0)
        ax.set_ylabel(_label(metric))
        ax.set_title(title or f"{_label(metric)[:-4]} per dataset" + (f" ({block})" if block else ""))
        _legend(fig)
        footer(fig, _note(picked))
        return save_figure(fig, out)


_VERDICT_COLORS = {"reproduced": "#2ca02c", "inconclusive": "#7f7f7f", "contradicted": "#d62728",
                   "reported": "#1f77b4"}


def claims_chart(frame: "pd.DataFrame", out: str | Path, scale: str) -> Path:
    """A forest plot of the decided claims (dos report claims): per claim, the reproduced mean difference with
    its 95% interval (coloured by verdict) and the paper's difference (open diamond). Claims not run are left
    out and counted in the title; ratios (`reported`) are drawn in their own units like the rest."""
    import matplotlib

    shown = frame[frame["verdict"].isin(list(_VERDICT_COLORS)) & frame["diff"].notna()].reset_index(drop=True)
    skipped = len(frame) - len(shown)
    with matplotlib.rc_context(RC):
        fig = new_figure(6.4, 1.2 + 0.28 * max(1, len(shown)))
        ax = fig.add_subplot()
        for i, r in enumerate(shown.itertuples()):
            y = len(shown) - 1 - i
            color = _VERDICT_COLORS[r.verdict]
            if not math.isnan(r.ci_low):
                ax.plot([r.ci_low, r.ci_high], [y, y], color=color, linewidth=2, solid_capstyle="butt")
            ax.plot(r.diff, y, "o", color=color, markersize=4, label=r.verdict)
            if not math.isnan(r.paper_diff):
                ax.plot(r.paper_diff, y, "D", markerfacecolor="none", markeredgecolor="black", markersize=4,
                        label="paper")
        ax.axvline(0.0, color="0.6", linewidth=0.8)
        ax.set_yticks(range(len(shown)), [f"T{r.table}: {r.claim}" for r in shown.itertuples()][::-1], fontsize=6)
        ax.set_xlabel("difference (mIoU points); 95% t-interval over seeds, paired by seed")
        ax.set_title(f"The paper's claims at scale {scale}" + (f" ({skipped} not run, not shown)" if skipped else ""))
        if shown.empty:
            ax.text(0.5, 0.5, "no claim decided at this scale", ha="center", va="center", transform=ax.transAxes)
        handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
        if handles:
            ax.legend(list(handles.values()), list(handles), fontsize=6, loc="best")
        footer(fig, scale_note(scale))
        return save_figure(fig, out)


def _legend(fig: "Figure") -> None:
    """One legend right of the axes, one entry per label over all panels."""
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    fig.legend(list(entries.values()), list(entries), fontsize=6, frameon=False, loc="outside right upper")


def footer(fig: "Figure", note: str) -> None:
    """The scale note under the axes (smoke/mini), wrapped to the figure's width."""
    if note:
        import textwrap

        chars = int(fig.get_figwidth() * 24)
        fig.supxlabel("\n".join(textwrap.wrap(note, chars)), fontsize=5, color="0.35", ha="left", x=0.01)


def _label(metric: str) -> str:
    return {"miou": "mIoU", "macc": "mAcc", "allacc": "allAcc"}.get(metric, metric) + " (%)"


def _number(value: str, field: str) -> float:
    try:
        return float(value.rstrip("%"))
    except ValueError:
        raise DosError(f"sweep: {field} {value!r} is not a number (choose --x row or --x column)") from None


def sweep_curve(frame: "pd.DataFrame", out: str | Path, x: str = "column", series: Sequence[str] | None = None,
                block: str | None = None, metric: str = "miou", logx: bool = False, xlabel: str | None = None,
                title: str | None = None) -> Path:
    """Reproduced mean ± std against the swept value (the table's `x` field: 'row' or 'column'), one line per
    value of the other field (`series`, default all), the paper's values dashed; one panel per block."""
    import matplotlib

    if x not in ("row", "column"):
        raise DosError(f"sweep: --x must be 'row' or 'column', got {x!r}")
    other = "column" if x == "row" else "row"
    picked = _select(frame, block, metric)
    if series:
        unknown = [name for name in series if name not in set(picked[other])]
        if unknown:
            raise DosError(f"sweep: {other}s {unknown} not found ({other}s: {', '.join(_unique(picked[other]))})")
        picked = picked[picked[other].isin(series)]
    names = list(series) if series else _unique(picked[other])
    blocks = _unique(picked["block"])

    with matplotlib.rc_context(RC):
        fig = new_figure(3.2 * len(blocks) + 1.8, 3.2)
        for b, name_of_block in enumerate(blocks):
            ax = fig.add_subplot(1, len(blocks), b + 1)
            panel = picked[picked["block"] == name_of_block]
            for i, name in enumerate(names):
                line = panel[panel[other] == name]
                if line.empty:
                    continue
                xs = [_number(v, x) for v in line[x]]
                order = sorted(range(len(xs)), key=xs.__getitem__)
                xs = [xs[k] for k in order]
                mean, std, paper = (line[c].to_numpy()[order] for c in ("reproduced_mean", "reproduced_std", "paper"))
                color = _COLORS[i % len(_COLORS)]
                if not all(math.isnan(v) for v in mean):
                    ax.errorbar(xs, mean, yerr=[0.0 if math.isnan(s) else s for s in std], color=color, marker="o",
                                markersize=3, capsize=2, label=f"{name}: reproduced")
                if not all(math.isnan(v) for v in paper):
                    ax.plot(xs, paper, color=color, linestyle="--", marker="x", markersize=3, alpha=0.7,
                            label=f"{name}: paper")
            if logx:
                ax.set_xscale("log", base=2)
            ticks = sorted({_number(v, x) for v in panel[x]})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel(xlabel or x)
            ax.set_ylabel(_label(metric))
            ax.set_title(name_of_block or title or "")
        if title and any(blocks):
            fig.suptitle(title)
        _legend(fig)
        footer(fig, _note(picked))
        return save_figure(fig, out)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=("bars", "sweep"), required=True,
                        help="bars: reproduced vs paper per dataset; sweep: a metric against a swept value")
    parser.add_argument("--tables", nargs="+", required=True, help="results/tableN.csv files")
    parser.add_argument("--out", required=True, help="output .png or .svg")
    parser.add_argument("--metric", default="miou", help="metric to draw (default: miou)")
    parser.add_argument("--block", default=None,
                        help="keep one block (bars default: 'linear probing' when the table has it; sweep: all, "
                             "one panel each)")
    parser.add_argument("--rows", nargs="+", default=None, help="bars: methods (rows) to draw")
    parser.add_argument("--x", choices=("row", "column"), default="column", help="sweep: which field is the x axis")
    parser.add_argument("--series", nargs="+", default=None, help="sweep: values of the other field to draw")
    parser.add_argument("--logx", action="store_true", help="sweep: log2 x axis (prototype counts)")
    parser.add_argument("--xlabel", default=None, help="sweep: x axis label")
    parser.add_argument("--title", default=None)


def run(args: argparse.Namespace) -> int:
    frame = load_tables(args.tables)
    if args.kind == "bars":
        block = args.block
        if block is None and "linear probing" in set(frame["block"]):
            block = "linear probing"
        path = bar_chart(frame, args.out, block=block, metric=args.metric, rows=args.rows, title=args.title)
    else:
        path = sweep_curve(frame, args.out, x=args.x, series=args.series, block=args.block, metric=args.metric,
                           logx=args.logx, xlabel=args.xlabel, title=args.title)
    print(path)
    return 0
