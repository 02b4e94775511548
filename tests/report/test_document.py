"""dos report document: the Markdown report embeds every table and figure, with no date in it."""

from __future__ import annotations

import argparse
import re

import pytest

from dos.errors import DosError
from dos.report import document, figures, tables
from tests.report.helpers import table5_spec


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    document.configure(parser)
    return document.run(parser.parse_args(list(argv)))


def test_report_embeds_tables_and_figures(tmp_path):
    results = tmp_path / "results"
    tables.write_table(tables.build_table(tables.load_spec(table5_spec(tmp_path))), results)
    figure_dir = tmp_path / "reports/mini/figures"
    figures.bar_chart(figures.load_tables([results / "table5.csv"]), figure_dir / "ablation.png",
                      block="training target")
    out = tmp_path / "reports/mini/report.md"
    argv = ["--scale", "mini", "--results", str(results), "--figures", str(figure_dir), "--out", str(out)]
    assert _run(*argv) == 0
    text = out.read_text()
    assert (results / "table5.md").read_text().strip() in text  # the table, verbatim
    assert "63.0 ± 3.6" in text
    assert "![ablation](figures/ablation.png)" in text
    assert "synthetic benchmark at the mini scale" in text
    assert "git commit:" in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # date-free
    first = out.read_bytes()
    assert _run(*argv) == 0
    assert out.read_bytes() == first


def test_report_refuses_mixed_scales(tmp_path):
    results = tmp_path / "results"
    tables.write_table(tables.build_table(tables.load_spec(table5_spec(tmp_path, scale="smoke"))), results)
    with pytest.raises(DosError, match="built at scale smoke, not mini"):
        document.build_report("mini", results, [], tmp_path / "report.md")


def test_report_without_inputs_says_so(tmp_path):
    text = document.build_report("paper", tmp_path / "results", [tmp_path / "figures"], tmp_path / "report.md")
    assert "No results table" in text and "No figure" in text and "Note." not in text


def test_report_shows_the_claims_before_the_tables(tmp_path):
    from dos.utils.io import write_text

    results = tmp_path / "results"
    tables.write_table(tables.build_table(tables.load_spec(table5_spec(tmp_path))), results)
    write_text(results / "claims.md", "### The paper's claims (scale mini)\n\n| claim | verdict |\n")
    write_text(results / "claims.csv", "table,claim\n")
    text = document.build_report("mini", results, [], tmp_path / "report.md")
    assert text.index("## Claims") < text.index("The paper's claims") < text.index("## Tables")
    assert "claims.csv" in text.split("## Claims")[0]  # hashed in the provenance
