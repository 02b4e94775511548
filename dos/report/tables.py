"""`dos report table`: the reproduced mean ± std over seeds next to the paper's numbers.

The input is a cells spec written by the workflow::

    table: 5
    scale: mini
    cells:
      - {block: "training target", row: "softmax (ours)", column: "nuScenes", metric: miou,
         runs: [runs/mini/.../seed0/metrics.json, runs/mini/.../seed1/metrics.json]}

Each metrics.json holds fractions in [0, 1] (`{"miou": 0.61, "macc": ..., ...}`); tables are in %.
The output frame has one row per cell of the paper's table (cells the spec does not list keep an
empty reproduced value), written as results/tableN.csv, .md and .tex. `block`, `row`, `column` and
`metric` name a cell exactly as in `paper_numbers.csv` (the paper's tables transcribed once).

At the smoke and mini scales the reproduced numbers come from the synthetic benchmark: every output
says so, and the paper column stays the paper's real-data number for reference only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dos.cli import DosError
from dos.utils.io import write_text

if TYPE_CHECKING:
    import pandas as pd

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.csv")
SCALES = ("smoke", "mini", "paper")
KEY = ("block", "row", "column", "metric")
COLUMNS = ["table", "block", "row", "column", "metric", "scale", "n_seeds", "reproduced_mean", "reproduced_std",
           "paper", "diff", "runs", "note"]
NUMERIC = ("n_seeds", "reproduced_mean", "reproduced_std", "paper", "diff")

# Short titles after the paper's captions.
TITLES: dict[int, str] = {
    1: "Semantic segmentation, linear probing and fine-tuning (mIoU / mAcc %)",
    3: "Cross-domain segmentation: pretraining dataset (rows) x evaluation dataset (columns)",
    4: "ParisLuco3D, zero-shot and few-shot (mIoU %)",
    5: "Ablation of DOS components, linear probing on nuScenes",
    6: "Label efficiency on nuScenes, fine-tuning (mIoU %)",
    7: "Label efficiency on ScanNet (mIoU %)",
    8: "Zipf exponent alpha, linear probing (mIoU %)",
    9: "Zipf exponent alpha, ScanNet200 head / common / tail classes (mIoU %)",
    10: "Prototype count and objective, linear probing (mIoU %)",
    11: "Cross-view supervision, linear probing (mIoU %)",
    12: "Backbones: SPUNet and PTv3 on nuScenes (mIoU %)",
}


def scale_note(scale: str) -> str:
    """The note every output carries at the smoke and mini scales ('' at the paper scale)."""
    if scale == "paper":
        return ""
    return (f"Scale '{scale}': the reproduced numbers come from the synthetic benchmark at the {scale} scale; "
            "the paper column is the paper's number on the real data, shown for reference only "
            "(not comparable, and never copied into the reproduced columns).")


def paper_numbers() -> "pd.DataFrame":
    """The transcription of the paper's tables: table (int), block, row, column, metric, value (% or NaN), source."""
    import pandas as pd

    frame = pd.read_csv(PAPER_NUMBERS, dtype=str, keep_default_na=False)
    frame["table"] = frame["table"].astype(int)
    frame["value"] = pd.to_numeric(frame["value"].mask(frame["value"] == "")).astype(float)
    return frame


def read_table_csv(path: str | Path) -> "pd.DataFrame":
    """Read a results/tableN.csv back with its dtypes (text columns stay text, empty numbers are NaN)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DosError(f"{path}: table CSV not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise DosError(f"{path}: not a results table (missing columns {missing})")
    frame["table"] = frame["table"].astype(int)
    for name in NUMERIC:
        frame[name] = pd.to_numeric(frame[name].mask(frame[name] == "")).astype(float)
    return frame


def _text(value: Any) -> str:
    """A spec name as text; YAML turns an unquoted 32 or 1.3 into a number, the paper prints it as text."""
    return "" if value is None else str(value)


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and check a cells spec; every error names the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise DosError(f"{path}: cells spec not found")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise DosError(f"{path}: a cells spec is a mapping with keys table, scale, cells")
    unknown = set(spec) - {"table", "scale", "cells"}
    if unknown:
        raise DosError(f"{path}: unknown keys {sorted(unknown)} (expected table, scale, cells)")
    if not isinstance(spec.get("table"), int):
        raise DosError(f"{path}: 'table' must be a table number of the paper, got {spec.get('table')!r}")
    if spec.get("scale") not in SCALES:
        raise DosError(f"{path}: 'scale' must be one of {', '.join(SCALES)}, got {spec.get('scale')!r}")
    cells = spec.get("cells")
    if not isinstance(cells, list) or not cells:
        raise DosError(f"{path}: 'cells' must be a non-empty list")
    checked = []
    for i, cell in enumerate(cells):
        where = f"{path}: cells[{i}]"
        if not isinstance(cell, dict):
            raise DosError(f"{where}: each cell is a mapping with keys block, row, column, metric, runs")
        unknown = set(cell) - {*KEY, "runs"}
        if unknown:
            raise DosError(f"{where}: unknown keys {sorted(unknown)}")
        for name in ("row", "column", "metric", "runs"):
            if name not in cell:
                raise DosError(f"{where}: missing key '{name}'")
        runs = cell["runs"]
        if not isinstance(runs, list) or not runs or not all(isinstance(run, str) for run in runs):
            raise DosError(f"{where}: 'runs' must be a non-empty list of metrics.json paths")
        checked.append({**{name: _text(cell.get(name)) for name in KEY}, "runs": list(runs)})
    return {"table": spec["table"], "scale": spec["scale"], "cells": checked, "path": str(path)}


def read_metric(path: str | Path, key: str) -> float:
    """One metric of a run's metrics.json, converted from a fraction to %."""
    path = Path(path)
    if not path.is_file():
        raise DosError(f"{path}: metrics file not found")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DosError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metrics, dict) or key not in metrics:
        present = sorted(metrics) if isinstance(metrics, dict) else []
        raise DosError(f"{path}: no metric '{key}' (present: {', '.join(present) or 'none'})")
    value = metrics[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DosError(f"{path}: metric '{key}' is {value!r}, not a finite number")
    if not 0.0 <= value <= 1.0:
        raise DosError(f"{path}: metric '{key}' is {value}; metrics.json holds fractions in [0, 1], not %")
    return 100.0 * float(value)


def build_table(spec: dict[str, Any], base: str | Path = ".") -> "pd.DataFrame":
    """One row per cell of the paper's table: the mean and sample std (ddof=1) over the runs of each
    spec cell, the paper's value and diff = reproduced_mean - paper. Relative run paths start at `base`."""
    import pandas as pd

    table, scale = spec["table"], spec["scale"]
    paper = paper_numbers()
    paper = paper[paper["table"] == table]
    if paper.empty:
        known = sorted(set(paper_numbers()["table"]))
        raise DosError(f"{spec.get('path', 'spec')}: Table {table} is not transcribed (tables: {known})")
    paper_keys = {tuple(row[name] for name in KEY): row["value"] for _, row in paper.iterrows()}

    cells: dict[tuple[str, ...], list[str]] = {}
    for cell in spec["cells"]:
        key = tuple(cell[name] for name in KEY)
        if key not in paper_keys:
            names = [" | ".join(k) for k in paper_keys]
            close = difflib.get_close_matches(" | ".join(key), names, n=3, cutoff=0.5)
            hint = f" (did you mean: {'; '.join(close)}?)" if close else ""
            raise DosError(f"{spec.get('path', 'spec')}: block | row | column | metric = {' | '.join(key)!r} "
                           f"is not a cell of Table {table}{hint}")
        if key in cells:
            raise DosError(f"{spec.get('path', 'spec')}: cell {' | '.join(key)!r} is listed twice")
        cells[key] = cell["runs"]

    note = scale_note(scale)
    records = []
    for key, paper_value in paper_keys.items():
        runs = cells.get(key, [])
        values = [read_metric(Path(base) / run, key[3]) for run in runs]
        mean = math.fsum(values) / len(values) if values else math.nan
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        records.append({"table": table, **dict(zip(KEY, key)), "scale": scale, "n_seeds": len(values),
                        "reproduced_mean": mean, "reproduced_std": std, "paper": paper_value,
                        "diff": mean - paper_value, "runs": ";".join(runs), "note": note})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _fmt(value: float, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def _display(frame: "pd.DataFrame", pm: str) -> "pd.DataFrame":
    """The frame as the md/tex show it: reproduced as 'mean ± std', one decimal like the paper."""
    import pandas as pd

    reproduced = []
    for mean, std in zip(frame["reproduced_mean"], frame["reproduced_std"]):
        text = _fmt(mean)
        if text and not math.isnan(std):
            text += f" {pm} {_fmt(std)}"
        reproduced.append(text)
    return pd.DataFrame({
        "block": frame["block"], "row": frame["row"], "column": frame["column"], "metric": frame["metric"],
        "n_seeds": frame["n_seeds"].astype(int).astype(str), "reproduced (mean ± std)": reproduced,
        "paper": [_fmt(v) for v in frame["paper"]], "diff": [_fmt(v, sign=True) for v in frame["diff"]],
    })


def _title(frame: "pd.DataFrame") -> tuple[int, str, str]:
    table, scale = int(frame["table"].iloc[0]), str(frame["scale"].iloc[0])
    return table, scale, f"Table {table}: {TITLES.get(table, '')} (scale {scale})"


def render_markdown(frame: "pd.DataFrame") -> str:
    """Markdown: a heading, the scale note (smoke/mini) and the table."""
    _, scale, title = _title(frame)
    parts = [f"### {title}", ""]
    if scale_note(scale):
        parts += [f"> **Note.** {scale_note(scale)}", ""]
    parts += [_display(frame, "±").to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$"}


def _tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(char, char) for char in str(text))


def render_latex(frame: "pd.DataFrame") -> str:
    """LaTeX (booktabs) with the scale note in the caption; text is escaped here, not by pandas."""
    table, scale, title = _title(frame)
    shown = _display(frame, "±")
    shown = shown.rename(columns={name: _tex(name) for name in shown.columns}).map(_tex)
    caption = _tex(title) + (" " + _tex(scale_note(scale)) if scale_note(scale) else "")
    body = shown.to_latex(index=False, escape=False, caption=caption, label=f"tab:reproduced-{table}",
                          column_format="l" * shown.shape[1])
    comment = f"% {scale_note(scale)}\n" if scale_note(scale) else ""
    return comment + body


def write_table(frame: "pd.DataFrame", out_dir: str | Path) -> list[Path]:
    """Write tableN.csv, .md and .tex atomically; returns the three paths."""
    table = int(frame["table"].iloc[0])
    out_dir = Path(out_dir)
    paths = [out_dir / f"table{table}.{ext}" for ext in ("csv", "md", "tex")]
    write_text(paths[0], frame.to_csv(index=False, lineterminator="\n"))
    write_text(paths[1], render_markdown(frame))
    write_text(paths[2], render_latex(frame))
    return paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="cells spec YAML (table, scale, cells with block/row/column/metric/runs)")
    parser.add_argument("--out-dir", default="results", help="where tableN.{csv,md,tex} go (default: results)")
    parser.add_argument("--base", default=".", help="folder the spec's relative run paths start from (default: .)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    frame = build_table(spec, base=args.base)
    for path in write_table(frame, args.out_dir):
        print(path)
    reproduced = int((frame["n_seeds"] > 0).sum())
    print(f"Table {spec['table']} ({spec['scale']}): {reproduced} of {len(frame)} cells reproduced")
    return 0
