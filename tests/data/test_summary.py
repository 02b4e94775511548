"""`dos data summary` end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import REPO_ROOT


def dos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dos", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120)


def test_json_on_the_real_semantickitti_sample(real_fixtures):
    root = real_fixtures / "semantickitti/mmdet3d/tests/data/semantickitti"
    result = dos("data", "summary", "--format", "semantickitti", str(root), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    train = summary["splits"]["train"]
    assert summary["num_classes"] == 19 and list(summary["splits"]) == ["train"]
    assert (train["scans"], train["points"], train["ignored"]) == (1, 50, 3)
    assert {k: v for k, v in train["classes"].items() if v} == {"building": 25, "vegetation": 17, "trunk": 3,
                                                                 "pole": 2}
    assert sum(train["classes"].values()) + train["ignored"] == train["points"]


def test_text_with_a_reader_option(real_fixtures):
    root = real_fixtures / "nuscenes/mmdet3d_pr2859/tests/data/nuscenes"
    result = dos("data", "summary", "--format", "nuscenes", str(root), "--option", "info=nus_info.pkl")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[all] scans: 2  points: 80" in lines
    counts = {line.split()[0]: int(line.split()[-1]) for line in lines if line.startswith("  ")}
    assert counts["car"] == 4 and counts["driveable_surface"] == 30 and counts["(ignored)"] == 18


def test_bad_input_exits_non_zero_naming_the_file(tmp_path):
    velodyne = tmp_path / "sequences" / "08" / "velodyne"
    velodyne.mkdir(parents=True)
    np.zeros(7, np.float32).tofile(velodyne / "000000.bin")
    result = dos("data", "summary", "--format", "semantickitti", str(tmp_path))
    assert result.returncode == 2
    assert f"{velodyne / '000000.bin'}: 28 bytes is not a multiple" in result.stderr
    assert result.stdout == ""

    result = dos("data", "summary", "--format", "waymo", str(tmp_path / "missing"), "--json")
    assert result.returncode == 2 and "missing: dataset root folder not found" in result.stderr

    result = dos("data", "summary", "--format", "semantickitti", str(tmp_path), "--option", "oops")
    assert result.returncode == 2 and "expected KEY=VALUE" in result.stderr

    result = dos("data", "summary", "--format", "semantickitti", str(tmp_path), "--option", "classes=200")
    assert result.returncode == 2 and "bad reader options ['classes']" in result.stderr


def test_box_counts_per_class(smoke_benchmark):
    from dos.data.readers import open_reader
    from dos.data.summary import format_text, summarize

    reader = open_reader("synthetic-lidar", smoke_benchmark / "synthetic-nuscenes")
    summary = summarize(reader)
    for split, entry in summary["splits"].items():
        boxes = [reader.load(split, scan_id).extra["boxes"] for scan_id in reader.scan_ids(split)]
        assert sum(entry["boxes"].values()) == sum(len(b) for b in boxes)
        assert entry["boxes"]["car"] == sum(b.names().count("car") for b in boxes) > 0
        assert entry["empty_boxes"] == sum(int((b.num_points == 0).sum()) for b in boxes)
    text = format_text(summary)
    assert f"[train] 3D boxes: {sum(summary['splits']['train']['boxes'].values())}" in text
    assert "  box car" in text
