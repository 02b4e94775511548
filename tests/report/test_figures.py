"""dos report figure: bar charts and sweep curves from table CSVs, byte-identical across runs."""

from __future__ import annotations

import argparse

import pytest

from dos.errors import DosError
from dos.report import figures, tables
from tests.report.helpers import write_metrics, write_spec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    figures.configure(parser)
    return figures.run(parser.parse_args(list(argv)))


@pytest.fixture
def table_csvs(tmp_path):
    """Table 1 (linear probing, DOS on three datasets, 2 seeds) and Table 8 (alpha sweep on ScanNet, 2 seeds)."""
    cells1 = []
    for i, dataset in enumerate(["nuScenes", "Waymo", "ScanNet"]):
        runs = [write_metrics(tmp_path / f"t1/{dataset}/seed{s}/metrics.json", miou=0.5 + 0.05 * i + 0.01 * s)
                for s in range(2)]
        cells1.append({"block": "linear probing", "row": "DOS (ours)", "column": dataset, "metric": "miou", "runs": runs})
    cells8 = []
    for i, alpha in enumerate(["0.0", "0.6", "1.3", "3.0"]):
        runs = [write_metrics(tmp_path / f"t8/{alpha}/seed{s}/metrics.json", miou=0.4 + 0.02 * i - 0.01 * s)
                for s in range(2)]
        cells8.append({"row": "ScanNet (mIoU)", "column": alpha, "metric": "miou", "runs": runs})
    out = tmp_path / "results"
    for number, cells in ((1, cells1), (8, cells8)):
        spec = write_spec(tmp_path / f"t{number}.yaml", number, "mini", cells)
        tables.write_table(tables.build_table(tables.load_spec(spec)), out)
    return out / "table1.csv", out / "table8.csv"


def test_bars_and_sweep_are_written_and_byte_identical(tmp_path, table_csvs):
    table1, table8 = table_csvs
    outputs = {}
    for attempt in range(2):
        bars = tmp_path / f"run{attempt}/figure1.png"
        sweep = tmp_path / f"run{attempt}/alpha.png"
        svg = tmp_path / f"run{attempt}/alpha.svg"
        assert _run("--kind", "bars", "--tables", str(table1), "--out", str(bars)) == 0
        for path in (sweep, svg):
            assert _run("--kind", "sweep", "--tables", str(table8), "--x", "column", "--series", "ScanNet (mIoU)",
                        "ScanNet200 (mIoU)", "--xlabel", "alpha", "--out", str(path)) == 0
        outputs[attempt] = [p.read_bytes() for p in (bars, sweep, svg)]
    assert outputs[0] == outputs[1]
    assert outputs[0][0].startswith(PNG_SIGNATURE) and outputs[0][1].startswith(PNG_SIGNATURE)
    assert b"<svg" in outputs[0][2] and b"dc:date" not in outputs[0][2]
    assert all(len(blob) > 5000 for blob in outputs[0])


def test_sweep_with_rows_as_x_and_panels(tmp_path):
    """Table 10: prototype counts are the rows, one panel per dataset block."""
    cells = []
    for block in ("nuScenes", "ScanNet"):
        for k in ("32", "128", "1024", "4096"):
            run = write_metrics(tmp_path / f"{block}/{k}/metrics.json", miou=0.6 + int(k) / 1e5)
            cells.append({"block": block, "row": k, "column": "Softmap + Zipf", "metric": "miou", "runs": [run]})
    spec = write_spec(tmp_path / "t10.yaml", 10, "smoke", cells)
    tables.write_table(tables.build_table(tables.load_spec(spec)), tmp_path / "results")
    out = tmp_path / "prototypes.png"
    frame = figures.load_tables([tmp_path / "results/table10.csv"])
    assert figures.sweep_curve(frame, out, x="row", logx=True) == out
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_figure_errors(tmp_path, table_csvs):
    table1, table8 = table_csvs
    frame = figures.load_tables([table8])
    with pytest.raises(DosError, match="is not a number"):
        figures.sweep_curve(frame, tmp_path / "x.png", x="row")  # rows of Table 8 are dataset names
    with pytest.raises(DosError, match="not found"):
        figures.sweep_curve(frame, tmp_path / "x.png", series=["ScanNet"])
    with pytest.raises(DosError, match="no cells with metric 'macc'"):
        figures.bar_chart(figures.load_tables([table8]), tmp_path / "x.png", metric="macc")
    with pytest.raises(DosError, match=r"\.pdf: figures are \.png or \.svg"):
        figures.bar_chart(figures.load_tables([table1]), tmp_path / "x.pdf", block="linear probing")
    with pytest.raises(DosError, match="table CSV not found"):
        figures.load_tables([tmp_path / "absent.csv"])
