"""dos report table: mean ± std over seeds next to the paper's numbers, from fake metrics.json files."""

from __future__ import annotations

import argparse
import math

import pytest

from dos.errors import DosError
from dos.report import tables
from tests.report.helpers import table5_spec, write_metrics, write_spec


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    tables.configure(parser)
    return tables.run(parser.parse_args(list(argv)))


def _cell(frame, row: str, metric: str):
    picked = frame[(frame["row"] == row) & (frame["metric"] == metric)]
    assert len(picked) == 1
    return picked.iloc[0]


def test_mean_std_diff_by_hand(tmp_path):
    frame = tables.build_table(tables.load_spec(table5_spec(tmp_path)))
    assert len(frame) == 24  # one row per cell of the paper's Table 5
    assert list(frame.columns) == tables.COLUMNS
    cell = _cell(frame, "softmax (ours)", "miou")
    # seeds 60, 62, 67: mean 63, sample variance (9 + 1 + 16) / 2 = 13
    assert cell["n_seeds"] == 3
    assert cell["reproduced_mean"] == pytest.approx(63.0)
    assert cell["reproduced_std"] == pytest.approx(math.sqrt(13.0))
    assert cell["paper"] == 72.3
    assert cell["diff"] == pytest.approx(63.0 - 72.3)
    assert cell["block"] == "training target" and cell["column"] == "nuScenes" and cell["scale"] == "mini"
    assert cell["runs"].count("metrics.json") == 3
    one = _cell(frame, "clustering", "macc")
    assert one["n_seeds"] == 1 and one["reproduced_mean"] == pytest.approx(80.0) and math.isnan(one["reproduced_std"])
    assert one["diff"] == pytest.approx(80.0 - 81.7)
    untouched = _cell(frame, "naive", "allacc")
    assert untouched["n_seeds"] == 0 and math.isnan(untouched["reproduced_mean"]) and untouched["paper"] == 88.9


def test_outputs_md_tex_csv(tmp_path):
    out = tmp_path / "results"
    assert _run(str(table5_spec(tmp_path)), "--out-dir", str(out)) == 0
    md, tex = (out / "table5.md").read_text(), (out / "table5.tex").read_text()
    for text in (md, tex):
        assert "63.0" in text and "3.6" in text and "72.3" in text and "-9.3" in text and "softmax (ours)" in text
        assert "synthetic benchmark at the mini scale" in text
    assert "63.0 ± 3.6" in md and r"63.0 $\pm$ 3.6" in tex
    assert r"\begin{tabular}" in tex and r"n\_seeds" in tex
    back = tables.read_table_csv(out / "table5.csv")
    assert len(back) == 24
    assert _cell(back, "softmax (ours)", "miou")["reproduced_mean"] == pytest.approx(63.0)
    assert "synthetic" in back["note"].iloc[0]
    assert sorted(p.name for p in out.iterdir()) == ["table5.csv", "table5.md", "table5.tex"]  # no temp files left


def test_paper_scale_has_no_note(tmp_path):
    frame = tables.build_table(tables.load_spec(table5_spec(tmp_path, scale="paper")))
    assert set(frame["note"]) == {""}
    assert "synthetic" not in tables.render_markdown(frame) and "synthetic" not in tables.render_latex(frame)


def test_relative_runs_start_at_base(tmp_path):
    write_metrics(tmp_path / "runs/a/metrics.json", miou=0.5)
    spec = write_spec(tmp_path / "s.yaml", 11, "smoke", [
        {"row": "ScanNet", "column": "Full DOS (Ours)", "metric": "miou", "runs": ["runs/a/metrics.json"]}])
    frame = tables.build_table(tables.load_spec(spec), base=tmp_path)
    cell = frame[(frame["row"] == "ScanNet") & (frame["column"] == "Full DOS (Ours)")].iloc[0]
    assert cell["reproduced_mean"] == pytest.approx(50.0) and cell["paper"] == 72.8


def test_numbers_in_yaml_match_printed_names(tmp_path):
    """Unquoted 1024 or 1.3 in the spec are read back as the paper prints them."""
    run = write_metrics(tmp_path / "m.json", miou=0.7)
    spec = write_spec(tmp_path / "s.yaml", 10, "mini",
                      [{"block": "ScanNet", "row": 1024, "column": "Softmap + Zipf", "metric": "miou", "runs": [run]}])
    frame = tables.build_table(tables.load_spec(spec))
    cell = frame[(frame["block"] == "ScanNet") & (frame["row"] == "1024") & (frame["column"] == "Softmap + Zipf")]
    assert cell.iloc[0]["n_seeds"] == 1 and cell.iloc[0]["paper"] == 72.8


def test_missing_metrics_file_is_named(tmp_path):
    spec = table5_spec(tmp_path)
    (tmp_path / "runs/softmax/seed1/metrics.json").unlink()
    with pytest.raises(DosError, match=r"runs/softmax/seed1/metrics\.json: metrics file not found"):
        tables.build_table(tables.load_spec(spec))


def test_missing_metric_key_names_file_and_key(tmp_path):
    runs = [write_metrics(tmp_path / "r0/metrics.json", miou=0.5), write_metrics(tmp_path / "r1/metrics.json", macc=0.5)]
    spec = write_spec(tmp_path / "s.yaml", 5, "mini",
                      [{"block": "zipf prior", "row": "alpha = 1.3", "column": "nuScenes", "metric": "miou", "runs": runs}])
    with pytest.raises(DosError, match=r"r1/metrics\.json: no metric 'miou'"):
        tables.build_table(tables.load_spec(spec))


def test_bad_specs(tmp_path):
    run = write_metrics(tmp_path / "m.json", miou=0.5)
    cell = {"block": "zipf prior", "row": "alpha = 1.3", "column": "nuScenes", "metric": "miou", "runs": [run]}
    with pytest.raises(DosError, match="not a cell of Table 5.*did you mean"):
        tables.build_table(tables.load_spec(write_spec(tmp_path / "a.yaml", 5, "mini", [{**cell, "row": "alpha=1.3"}])))
    with pytest.raises(DosError, match="listed twice"):
        tables.build_table(tables.load_spec(write_spec(tmp_path / "b.yaml", 5, "mini", [cell, cell])))
    with pytest.raises(DosError, match="Table 13 is not transcribed"):
        tables.build_table(tables.load_spec(write_spec(tmp_path / "c.yaml", 13, "mini", [cell])))
    with pytest.raises(DosError, match="'scale' must be one of"):
        tables.load_spec(write_spec(tmp_path / "d.yaml", 5, "huge", [cell]))
    with pytest.raises(DosError, match=r"cells\[0\]: missing key 'runs'"):
        tables.load_spec(write_spec(tmp_path / "e.yaml", 5, "mini", [{k: v for k, v in cell.items() if k != "runs"}]))
    with pytest.raises(DosError, match="cells spec not found"):
        tables.load_spec(tmp_path / "absent.yaml")
    percent = write_metrics(tmp_path / "p.json", miou=61.0)
    with pytest.raises(DosError, match=r"p\.json: metric 'miou' is 61\.0; .*fractions"):
        tables.build_table(tables.load_spec(write_spec(tmp_path / "f.yaml", 5, "mini", [{**cell, "runs": [percent]}])))
