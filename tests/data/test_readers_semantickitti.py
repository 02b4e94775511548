"""SemanticKITTI reader on the real sample, on written scans, and on every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dos.data.errors import DatasetError
from dos.data.readers import open_reader
from dos.data.readers.semantickitti import SemanticKittiReader

SAMPLE = "semantickitti/mmdet3d/tests/data/semantickitti"


def write_scan(root: Path, seq: str, frame: int, points: np.ndarray, semantic=None, instance=None) -> None:
    folder = root / "sequences" / seq
    (folder / "velodyne").mkdir(parents=True, exist_ok=True)
    points.astype(np.float32).tofile(folder / "velodyne" / f"{frame:06d}.bin")
    if semantic is not None:
        (folder / "labels").mkdir(exist_ok=True)
        instance = np.zeros_like(semantic) if instance is None else instance
        ((np.asarray(instance, np.uint32) << 16) | np.asarray(semantic, np.uint32)).tofile(
            folder / "labels" / f"{frame:06d}.label")


def points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10, 10, (n, 4)).astype(np.float32)


def test_real_sample(real_fixtures):
    reader = SemanticKittiReader(real_fixtures / SAMPLE)
    assert reader.splits() == ["train"]
    assert reader.scan_ids("train") == ["00/000000"]
    scan = reader.load("train", "00/000000")
    assert scan.coord.shape == (50, 3) and scan.coord.dtype == np.float32
    np.testing.assert_allclose(scan.coord[0], [-5.7885814, -19.15888, 0.67275274], rtol=1e-6)
    assert scan.feat.shape == (50, 1) and scan.feat[0, 0] == pytest.approx(0.27)
    raw, counts = np.unique(scan.extra["raw_segment"], return_counts=True)
    assert dict(zip(raw.tolist(), counts.tolist())) == {0: 2, 50: 25, 52: 1, 70: 17, 71: 3, 80: 2}
    names = reader.label_spec.names
    train = {names[t] if t >= 0 else None: int(c) for t, c in zip(*np.unique(scan.segment, return_counts=True))}
    assert train == {None: 3, "building": 25, "vegetation": 17, "trunk": 3, "pole": 2}
    assert scan.segment.dtype == np.int64 and not scan.extra["instance"].any()


def test_written_splits_and_instances(tmp_path):
    write_scan(tmp_path, "00", 0, points(10), np.full(10, 10), np.arange(10))
    write_scan(tmp_path, "00", 1, points(7), np.full(7, 252))
    write_scan(tmp_path, "08", 0, points(5), np.full(5, 40))
    write_scan(tmp_path, "11", 0, points(4))  # test split: no labels
    reader = SemanticKittiReader(tmp_path)
    assert reader.splits() == ["train", "val", "test"]
    assert reader.scan_ids("train") == ["00/000000", "00/000001"]
    first = reader.load("train", "00/000000")
    assert (first.segment == 0).all() and first.extra["instance"].tolist() == list(range(10))
    assert (reader.load("train", "00/000001").segment == 0).all()  # moving-car -> car
    assert reader.label_spec.names[reader.load("val", "08/000000").segment[0]] == "road"
    assert reader.load("test", "11/000000").segment is None


def test_synthetic_lidar_label_config(tmp_path):
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump({
        "names": ["road", "barrier"], "learning_map": {0: -1, 40: 0, 90: 1},
        "splits": {"train": ["00"], "val": ["01"]}}))
    write_scan(tmp_path, "00", 0, points(6), np.array([0, 40, 90, 90, 40, 90]))
    write_scan(tmp_path, "01", 0, points(3), np.array([90, 90, 90]))
    reader = open_reader("synthetic-lidar", tmp_path)
    assert reader.label_spec.names == ("road", "barrier")
    assert reader.splits() == ["train", "val"]
    assert reader.load("train", "00/000000").segment.tolist() == [-1, 0, 1, 1, 0, 1]
    write_scan(tmp_path, "01", 1, points(3), np.array([90, 10, 90]))  # 10 is not a class of this dataset
    with pytest.raises(DatasetError, match=r"01/labels/000001\.label.*\[10\]"):
        reader.load("val", "01/000001")


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="missing.*dataset root"):
        SemanticKittiReader(tmp_path / "missing")
    with pytest.raises(DatasetError, match="sequences folder not found"):
        SemanticKittiReader(tmp_path)
    (tmp_path / "sequences" / "99").mkdir(parents=True)
    with pytest.raises(DatasetError, match="none of the sequence folders"):
        SemanticKittiReader(tmp_path).splits()

    write_scan(tmp_path, "00", 0, points(8), np.full(8, 10))
    reader = SemanticKittiReader(tmp_path)
    bin_path = tmp_path / "sequences/00/velodyne/000000.bin"
    label_path = tmp_path / "sequences/00/labels/000000.label"

    with open(bin_path, "ab") as handle:  # 4 stray bytes
        handle.write(b"\0\0\0\0")
    with pytest.raises(DatasetError, match=f"{bin_path}.*multiple of the 16-byte record"):
        reader.load("train", "00/000000")

    write_scan(tmp_path, "00", 0, points(8), np.full(9, 10))
    with pytest.raises(DatasetError, match=f"{label_path}: 9 labels for 8 points"):
        reader.load("train", "00/000000")

    bad = points(8)
    bad[3, 1] = np.nan
    bad[5, 0] = np.inf
    write_scan(tmp_path, "00", 0, bad, np.full(8, 10))
    with pytest.raises(DatasetError, match=f"{bin_path}: 2 points have NaN or Inf"):
        reader.load("train", "00/000000")

    write_scan(tmp_path, "00", 0, points(8), np.array([10, 10, 5, 10, 10, 300, 10, 10]))
    with pytest.raises(DatasetError, match=rf"{label_path}: raw label ids \[5, 300\]"):
        reader.load("train", "00/000000")

    write_scan(tmp_path, "00", 0, points(0), np.zeros(0))
    with pytest.raises(DatasetError, match=f"{bin_path}: empty scan"):
        reader.load("train", "00/000000")

    write_scan(tmp_path, "00", 0, points(8), np.full(8, 10))
    label_path.unlink()
    with pytest.raises(DatasetError, match=f"{label_path}: label file missing.*'train'"):
        reader.load("train", "00/000000")
