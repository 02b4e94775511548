"""`dos report table`: the reproduced mean ± std over seeds next to the paper's numbers.

The input is a cells spec written by the workflow::

    table: 5
    scale: mini
    cells:
      - {block: "training target", row: "softmax (ours)", column: "nuScenes", metric: miou,
         runs: [runs/mini/.../seed0/metrics.json, runs/mini/.../seed1/metrics.json]}

The workflow keeps one template per table (workflow/tables/tableN.yaml) that names runs, not files: a cell
`run: probe/ptv3/nuscenes/full/nuscenes/dos` is expanded with `--runs-root runs/mini --seeds 0 1` into
`runs/mini/probe/ptv3/nuscenes/full/nuscenes/dos/seed{0,1}/metrics.json`. A templated cell may list the
`datasets` it needs; with `--datasets` (the datasets mapped at the scale) a cell needing another one is left
empty. `notes` say why cells are empty or what a row stands for::

    table: 4
    notes:
      - {column: CoLa, text: "not reproduced: ..."}    # every cell of that column; no keys = the whole table
    cells:
      - {block: "0 shots", row: "DOS(ours)", column: nuScenes, metric: miou, run: finetune/..., datasets: [...]}

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

from dos.errors import DosError
from dos.utils.io import write_text

if TYPE_CHECKING:
    import pandas as pd

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.csv")
SCALES = ("smoke", "mini", "paper")
KEY = ("block", "row", "column", "metric")
COLUMNS = ["table", "block", "row", "column", "metric", "scale", "n_seeds", "reproduced_mean", "reproduced_std",
           "paper", "diff", "runs", "note"]
NOTE_SEPARATOR = " | "  # between the scale note and the cell's own notes in the `note` column
NUMERIC = ("n_seeds", "reproduced_mean", "reproduced_std", "paper", "diff")

# Short titles after the paper's captions.
TITLES: dict[int, str] = {
    1: "Semantic segmentation, linear probing and fine-tuning (mIoU / mAcc %)",
    2: "3D object detection on nuScenes val, CenterPoint (NDS / mAP %)",
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


def load_spec(path: str | Path, scale: str | None = None) -> dict[str, Any]:
    """Read and check a cells spec or a table template; every error names the file and the entry.

    `scale` (the CLI's --scale) fills in or replaces the spec's own. Cells keep either `runs` (metrics.json
    paths) or `run` (a run name to expand with `expand_spec`) and their `datasets` (default none)."""
    path = Path(path)
    if not path.is_file():
        raise DosError(f"{path}: cells spec not found")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise DosError(f"{path}: a cells spec is a mapping with keys table, scale, cells (and notes)")
    unknown = set(spec) - {"table", "scale", "cells", "notes"}
    if unknown:
        raise DosError(f"{path}: unknown keys {sorted(unknown)} (expected table, scale, cells, notes)")
    if not isinstance(spec.get("table"), int):
        raise DosError(f"{path}: 'table' must be a table number of the paper, got {spec.get('table')!r}")
    scale = scale if scale is not None else spec.get("scale")
    if scale not in SCALES:
        raise DosError(f"{path}: 'scale' must be one of {', '.join(SCALES)}, got {scale!r}")
    cells = spec.get("cells")
    if not isinstance(cells, list) or not cells:
        raise DosError(f"{path}: 'cells' must be a non-empty list")
    checked = []
    for i, cell in enumerate(cells):
        where = f"{path}: cells[{i}]"
        if not isinstance(cell, dict):
            raise DosError(f"{where}: each cell is a mapping with keys block, row, column, metric, runs (or run)")
        unknown = set(cell) - {*KEY, "runs", "run", "datasets"}
        if unknown:
            raise DosError(f"{where}: unknown keys {sorted(unknown)}")
        for name in ("row", "column", "metric"):
            if name not in cell:
                raise DosError(f"{where}: missing key '{name}'")
        if "runs" not in cell and "run" not in cell:
            raise DosError(f"{where}: missing key 'runs' (metrics.json paths; or 'run', a run name to expand)")
        if "runs" in cell and "run" in cell:
            raise DosError(f"{where}: give either 'runs' (metrics.json paths) or 'run' (a run name), not both")
        entry = {name: _text(cell.get(name)) for name in KEY}
        if "runs" in cell:
            runs = cell["runs"]
            if not isinstance(runs, list) or not runs or not all(isinstance(run, str) for run in runs):
                raise DosError(f"{where}: 'runs' must be a non-empty list of metrics.json paths")
            entry["runs"] = list(runs)
        else:
            if not isinstance(cell["run"], str) or not cell["run"].strip("/"):
                raise DosError(f"{where}: 'run' must be a run name such as probe/ptv3/nuscenes/full/nuscenes/dos")
            entry["run"] = cell["run"].strip("/")
        datasets = cell.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(name, str) for name in datasets):
            raise DosError(f"{where}: 'datasets' must be a list of dataset names")
        entry["datasets"] = list(datasets)
        checked.append(entry)
    notes = spec.get("notes") or []
    if not isinstance(notes, list):
        raise DosError(f"{path}: 'notes' must be a list of {{block, row, column, metric, text}} mappings")
    checked_notes = []
    for i, note in enumerate(notes):
        if not isinstance(note, dict) or not isinstance(note.get("text"), str) or set(note) - {*KEY, "text"}:
            raise DosError(f"{path}: notes[{i}] must be a mapping with 'text' and optional block, row, column, "
                           "metric (the cells it is about)")
        checked_notes.append({**{name: _text(note[name]) for name in KEY if name in note}, "text": note["text"]})
    return {"table": spec["table"], "scale": scale, "cells": checked, "notes": checked_notes, "path": str(path)}


def expand_spec(spec: dict[str, Any], runs_root: str | None = None, seeds: list[int] | None = None,
                datasets: list[str] | None = None) -> dict[str, Any]:
    """The spec with every `run` cell turned into runs = [<runs_root>/<run>/seed<s>/metrics.json for s in seeds].

    With `datasets` (those available at the scale), a cell that needs another dataset is dropped (left empty in
    the table, with a note). Cells that already list `runs` are kept as they are."""
    cells, dropped = [], []
    for cell in spec["cells"]:
        missing = [name for name in cell.get("datasets", []) if datasets is not None and name not in datasets]
        if missing:
            dropped.append({**{name: cell[name] for name in KEY},
                            "text": f"{cell['column'] or cell['row']}: dataset {', '.join(missing)} not mapped at this "
                                    "scale (left empty)"})
            continue
        if "run" in cell:
            if runs_root is None or not seeds:
                raise DosError(f"{spec.get('path', 'spec')}: cell {cell['run']!r} is a template: give --runs-root "
                               "and --seeds")
            cell = {**{k: v for k, v in cell.items() if k != "run"},
                    "runs": [f"{runs_root.rstrip('/')}/{cell['run']}/seed{seed}/metrics.json" for seed in seeds]}
        cells.append(cell)
    return {**spec, "cells": cells, "notes": [*spec.get("notes", []), *dropped]}


def template_runs(path: str | Path, runs_root: str, seeds: list[int], datasets: list[str] | None = None) -> list[str]:
    """Every metrics.json a table template reads at a scale (what the workflow declares as the table's inputs)."""
    spec = expand_spec(load_spec(path, scale="paper"), runs_root, seeds, datasets)
    return list(dict.fromkeys(run for cell in spec["cells"] for run in cell["runs"]))


def cell_notes(spec: dict[str, Any], key: tuple[str, ...]) -> list[str]:
    """The texts of the spec's notes that are about the cell `key` (block, row, column, metric)."""
    return [note["text"] for note in spec.get("notes", [])
            if all(note[name] == value for name, value in zip(KEY, key) if name in note)]


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
    spec cell, the paper's value and diff = reproduced_mean - paper. Relative run paths start at `base`.
    A cell's note ends with the training budget its runs recorded (dos/report/budget.py) and its encoders'
    collapse record (dos/report/health.py)."""
    import pandas as pd

    from dos.report.budget import budget_note
    from dos.report.health import collapse_note

    table, scale = spec["table"], spec["scale"]
    paper = paper_numbers()
    paper = paper[paper["table"] == table]
    if paper.empty:
        known = sorted(set(paper_numbers()["table"]))
        raise DosError(f"{spec.get('path', 'spec')}: Table {table} is not transcribed (tables: {known})")
    paper_keys = {tuple(row[name] for name in KEY): row["value"] for _, row in paper.iterrows()}

    cells: dict[tuple[str, ...], list[str]] = {}
    if any("run" in cell for cell in spec["cells"]):
        raise DosError(f"{spec.get('path', 'spec')}: templated cells (run:) must be expanded first (--runs-root, "
                       "--seeds)")
    for note in spec.get("notes", []):
        if not any(all(k[KEY.index(name)] == note[name] for name in KEY if name in note) for k in paper_keys):
            raise DosError(f"{spec.get('path', 'spec')}: note {note['text']!r} is about no cell of Table {table}")
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

    records = []
    for key, paper_value in paper_keys.items():
        runs = cells.get(key, [])
        values = [read_metric(Path(base) / run, key[3]) for run in runs]
        mean = math.fsum(values) / len(values) if values else math.nan
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        note = NOTE_SEPARATOR.join(text for text in [scale_note(scale), *cell_notes(spec, key),
                                                     budget_note(runs, base), collapse_note(runs, base)]
                                if text)
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
    notes = _cell_notes(frame)
    if notes:
        parts += ["Notes:", ""] + [f"- {text}" for text in notes] + [""]
    return "\n".join(parts)


def _cell_notes(frame: "pd.DataFrame") -> list[str]:
    """The distinct notes of the table's cells, without the scale note (each once, in table order)."""
    prefix = scale_note(str(frame["scale"].iloc[0]))
    texts = [text.strip() for note in frame["note"] for text in str(note).split(NOTE_SEPARATOR)]
    return list(dict.fromkeys(text for text in texts if text and text != prefix))


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
    comment += "".join(f"% Note: {text}\n" for text in _cell_notes(frame))
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
    parser.add_argument("spec", help="cells spec YAML (table, scale, cells with block/row/column/metric/runs), "
                                     "or a table template whose cells name a `run` (see --runs-root)")
    parser.add_argument("--out-dir", nargs="+", default=["results"],
                        help="where tableN.{csv,md,tex} go (default: results); several folders get the same files")
    parser.add_argument("--base", default=".", help="folder the spec's relative run paths start from (default: .)")
    parser.add_argument("--scale", choices=SCALES, default=None, help="the scale (fills in or replaces the spec's)")
    parser.add_argument("--runs-root", default=None,
                        help="templates: a cell's `run` R reads <runs-root>/R/seed<s>/metrics.json for each seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="templates: the seeds of each cell")
    parser.add_argument("--datasets", nargs="*", default=None,
                        help="templates: the datasets available at the scale; cells needing others stay empty")


def run(args: argparse.Namespace) -> int:
    spec = expand_spec(load_spec(args.spec, scale=args.scale), args.runs_root, args.seeds, args.datasets)
    frame = build_table(spec, base=args.base)
    for out_dir in args.out_dir:
        for path in write_table(frame, out_dir):
            print(path)
    reproduced = int((frame["n_seeds"] > 0).sum())
    print(f"Table {spec['table']} ({spec['scale']}): {reproduced} of {len(frame)} cells reproduced")
    return 0
