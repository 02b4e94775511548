"""dos report table with templates: `run` cells expanded per seed, datasets missing at a scale, notes; and the
workflow's templates (workflow/tables/tableN.yaml) name only cells of the paper's tables."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import yaml

from dos.errors import DosError
from dos.report import tables
from tests.report.helpers import write_metrics

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    tables.configure(parser)
    return tables.run(parser.parse_args(list(argv)))


def _template(path: Path) -> Path:
    spec = {"table": 11,
            "notes": [{"row": "Waymo", "text": "Waymo is special."}],
            "cells": [{"row": "nuScenes", "column": "Full DOS (Ours)", "metric": "miou", "run": "probe/nu/dos"},
                      {"row": "ScanNet", "column": "Full DOS (Ours)", "metric": "miou", "run": "probe/sc/dos",
                       "datasets": ["scannet"]}]}
    path.write_text(yaml.safe_dump(spec))
    return path


def test_template_expands_runs_per_seed_and_drops_missing_datasets(tmp_path):
    for seed, value in ((0, 0.5), (1, 0.7)):
        write_metrics(tmp_path / f"runs/smoke/probe/nu/dos/seed{seed}/metrics.json", miou=value)
    spec = tables.expand_spec(tables.load_spec(_template(tmp_path / "t.yaml"), scale="smoke"), "runs/smoke", [0, 1],
                              ["nuscenes"])
    assert spec["cells"][0]["runs"] == [f"runs/smoke/probe/nu/dos/seed{s}/metrics.json" for s in (0, 1)]
    assert len(spec["cells"]) == 1  # ScanNet needs a dataset the scale does not map
    frame = tables.build_table(spec, base=tmp_path)
    cell = frame[(frame["row"] == "nuScenes") & (frame["column"] == "Full DOS (Ours)")].iloc[0]
    assert cell["n_seeds"] == 2 and cell["reproduced_mean"] == pytest.approx(60.0)
    scannet = frame[(frame["row"] == "ScanNet") & (frame["column"] == "Full DOS (Ours)")].iloc[0]
    assert scannet["n_seeds"] == 0 and "scannet not mapped" in scannet["note"]
    waymo = frame[frame["row"] == "Waymo"]
    assert all("Waymo is special." in note for note in waymo["note"])
    assert "- Waymo is special." in tables.render_markdown(frame)
    assert "% Note: Waymo is special." in tables.render_latex(frame)
    assert tables.template_runs(tmp_path / "t.yaml", "runs/smoke", [0, 1], ["nuscenes"]) == spec["cells"][0]["runs"]


def test_cli_writes_several_out_dirs(tmp_path):
    write_metrics(tmp_path / "runs/mini/probe/nu/dos/seed3/metrics.json", miou=0.5)
    write_metrics(tmp_path / "runs/mini/probe/sc/dos/seed3/metrics.json", miou=0.4)
    template = _template(tmp_path / "t.yaml")
    out = [tmp_path / "results/mini", tmp_path / "results"]
    assert _run(str(template), "--scale", "mini", "--runs-root", "runs/mini", "--seeds", "3", "--base", str(tmp_path),
                "--out-dir", *map(str, out)) == 0
    texts = [(folder / "table11.csv").read_text() for folder in out]
    assert texts[0] == texts[1] and "mini" in texts[0]
    frame = tables.read_table_csv(out[1] / "table11.csv")
    assert frame[frame["row"] == "ScanNet"]["reproduced_mean"].dropna().tolist() == [pytest.approx(40.0)]


def test_template_errors(tmp_path):
    template = _template(tmp_path / "t.yaml")
    with pytest.raises(DosError, match="give --runs-root"):
        tables.expand_spec(tables.load_spec(template, scale="mini"))
    with pytest.raises(DosError, match="must be expanded first"):
        tables.build_table(tables.load_spec(template, scale="mini"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"table": 11, "notes": [{"row": "Mars", "text": "x"}],
                                   "cells": [{"row": "nuScenes", "column": "Full DOS (Ours)", "metric": "miou",
                                              "run": "a"}]}))
    with pytest.raises(DosError, match="about no cell of Table 11"):
        tables.build_table(tables.expand_spec(tables.load_spec(bad, scale="mini"), "runs", [0]))
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"table": 11, "cells": [{"row": "nuScenes", "column": "Full DOS (Ours)",
                                                            "metric": "miou", "run": "a", "runs": ["b"]}]}))
    with pytest.raises(DosError, match="not both"):
        tables.load_spec(both, scale="mini")


@pytest.mark.parametrize("table", [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
def test_workflow_templates_name_cells_of_the_paper(table, tmp_path, monkeypatch):
    path = ROOT / "workflow" / "tables" / f"table{table}.yaml"
    spec = tables.expand_spec(tables.load_spec(path, scale="paper"), "runs/paper", [0])
    monkeypatch.setattr(tables, "read_metric", lambda run, key: 50.0)
    frame = tables.build_table(spec)  # raises on a cell or note that is not in the paper's table
    assert (frame["n_seeds"] > 0).sum() == len(spec["cells"])
    empty = frame[frame["n_seeds"] == 0]
    assert all(note for note in empty["note"]), "every empty cell at the paper scale says why"
    assert not math.isnan(frame["paper"].dropna().sum())
