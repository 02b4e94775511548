"""The transcription of the paper's tables (dos/report/paper_numbers.csv), checked against the paper's text.

Each table is parsed from the text file of the paper (its tab-separated row lines between the header and
the caption) and every value of the CSV is compared with it, and vice versa.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import dos
from dos.report.tables import PAPER_NUMBERS

PAPER = Path(dos.__file__).resolve().parents[1].parent / "shared" / "paper" / "DOS-paper.txt"
EXPECTED_ROWS = {1: 144, 2: 16, 3: 24, 4: 9, 5: 24, 6: 15, 7: 30, 8: 18, 9: 6, 10: 24, 11: 6, 12: 9}


def _cells(line: str) -> list[str]:
    """Tab-separated cells without the paper's markup (underline, bold, italics)."""
    return [re.sub(r"</?u>|\*\*|</?i>", "", cell).strip() for cell in line.split("\t")]


def _region(lines: list[str], header: str, table: int) -> list[list[str]]:
    """The non-empty lines from the header line (included) to the caption 'Table N:' (excluded)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(f"Table {table}:"))
    return [_cells(line) for line in lines[start:end] if line.strip()]


def _value(text: str) -> str:
    return "" if text == "-" else text


def parse_paper(text: str) -> dict[tuple, str]:
    """(table, block, row, column, metric) -> value as printed ('' for '-'), for Tables 1-12."""
    lines = text.splitlines()
    cells: dict[tuple, str] = {}

    def put(key: tuple, value: str) -> None:
        assert key not in cells, f"parsed twice: {key}"
        cells[key] = _value(value)

    # Tables 1 and 3: a dataset header, an mIoU/mAcc header, then one line per method.
    for table, header in ((1, "Method\tnuScenes\t\tWaymo"), (3, "Training dataset\t")):
        region = _region(lines, header, table)
        datasets = [c for c in region[0][1:] if c]
        assert region[1][1:3] == ["mIoU", "mAcc"]
        rows = region[2:]
        for i, row in enumerate(rows):
            block = ("linear probing" if i < 6 else "fine-tuning") if table == 1 else ""
            values = row[1:1 + 2 * len(datasets)]
            for j, dataset in enumerate(datasets):
                put((table, block, row[0], dataset, "miou"), values[2 * j])
                put((table, block, row[0], dataset, "macc"), values[2 * j + 1])

    region = _region(lines, "Methods\tNDS\tmAP", 2)
    blocks = {"20% Labeled Frames (Data-Efficient Setting)": "20% labeled frames", "Full Data (100% Labeled)": "full data"}
    for row in region[1:]:
        if len([c for c in row if c]) == 1:
            block = blocks[row[0]]
            continue
        put((2, block, row[0], "nuScenes", "nds"), row[1])
        put((2, block, row[0], "nuScenes", "map"), row[2])

    region = _region(lines, "# Shots\tsetting", 4)
    for row in region[1:]:
        for column, value in zip(region[0][2:], row[2:]):
            put((4, f"{row[0]} shots", row[1], column, "miou"), value)

    region = _region(lines, "Model\tmIoU\tmACC\tACC", 5)
    metrics = {"mIoU": "miou", "mACC": "macc", "ACC": "allacc"}
    blocks = {"Masked self-distillation": "masked self-distillation", "Training target": "training target",
              "+ Zipf prior": "zipf prior"}
    block = None
    for row in region[1:]:
        if len([c for c in row if c]) == 1:
            block = blocks[row[0]]
            continue
        for name, value in zip(region[0][1:], row[1:]):
            put((5, block, row[0], "nuScenes", metrics[name]), value)

    for table, header in ((6, "Method\t0.1%"), (8, "Zipf Exponent"), (11, "Dataset\tw/o Cross-View")):
        region = _region(lines, header, table)
        for row in region[1:]:
            for column, value in zip(region[0][1:], row[1:]):
                put((table, "", row[0], column, "miou"), value)

    region = _region(lines, "Method\tLimited Scenes", 7)
    group = ""
    groups = []
    for name in region[0][1:]:
        group = name.lower() if name else group
        groups.append(group)
    for row in region[2:]:
        for group, column, value in zip(groups, region[1][1:], row[1:]):
            put((7, group, row[0], column, "miou"), value)

    region = _region(lines, "α\tHead", 9)
    for row in region[1:]:
        for column, value in zip(region[0][1:], row[1:]):
            put((9, "", row[0], column, column.split()[0].lower() + "_miou"), value)

    region = _region(lines, "Prototype Count", 10)
    for row in region[1:]:
        if len([c for c in row if c]) == 1:
            block = row[0]
            continue
        for column, value in zip(region[0][1:], row[1:]):
            put((10, block, row[0], column, "miou"), value)

    region = _region(lines, "Fine-tuning\t\tLinear Probing", 12)
    assert region[1] == ["Method", "mIoU", "SPUNet", "mIoU"]
    for row in region[2:]:
        put((12, "fine-tuning", row[0], "nuScenes", "miou"), row[1])
        if len(row) > 2 and row[2]:
            put((12, "linear probing", row[2], "nuScenes", "miou"), row[3])
    return cells


def _transcription() -> list[dict[str, str]]:
    with open(PAPER_NUMBERS, newline="") as handle:
        return list(csv.DictReader(handle))


def test_transcription_shape():
    rows = _transcription()
    assert list(rows[0]) == ["table", "block", "row", "column", "metric", "value", "source"]
    counts: dict[int, int] = {}
    for row in rows:
        counts[int(row["table"])] = counts.get(int(row["table"]), 0) + 1
        assert row["metric"] in {"miou", "macc", "allacc", "head_miou", "common_miou", "tail_miou", "nds", "map"}
        assert row["value"] == "" or 0.0 <= float(row["value"]) <= 100.0
        assert row["source"].startswith(f"Table {row['table']}, ") and f"row '{row['row']}'" in row["source"]
    assert counts == EXPECTED_ROWS
    keys = [(r["table"], r["block"], r["row"], r["column"], r["metric"]) for r in rows]
    assert len(keys) == len(set(keys))


@pytest.mark.skipif(not PAPER.is_file(), reason=f"the paper's text is not at {PAPER}")
def test_transcription_matches_paper_text():
    parsed = parse_paper(PAPER.read_text())
    transcribed = {(int(r["table"]), r["block"], r["row"], r["column"], r["metric"]): r["value"]
                   for r in _transcription()}
    assert set(transcribed) == set(parsed)
    wrong = {key: (transcribed[key], parsed[key]) for key in parsed if transcribed[key] != parsed[key]}
    assert not wrong
    assert sum(1 for value in parsed.values() if value == "") == 40  # the dashes of Table 1


@pytest.mark.skipif(not PAPER.is_file(), reason=f"the paper's text is not at {PAPER}")
def test_each_row_line_holds_its_values():
    """Independent of the parser: every row's line in the paper contains the row string and its values."""
    lines = PAPER.read_text().splitlines()
    for row in _transcription():
        if not row["value"]:
            continue
        pattern = re.compile(rf"(^|\t)(<u>|\*\*)?{re.escape(row['value'])}(</u>|\*\*)?(\t|$)")
        assert any(row["row"] in line.split("\t") and pattern.search(line) for line in lines), row["source"]
