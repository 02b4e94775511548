"""Waymo reader on frames written in Pointcept's layout (no labelled real sample is available)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dos.data.errors import DatasetError
from dos.data.readers.waymo import WaymoReader


def write_frame(root: Path, folder: str, segment: str, frame: str, n: int, stored=None, strength_2d=False) -> Path:
    path = root / folder / segment / frame
    path.mkdir(parents=True)
    rng = np.random.default_rng(n)
    np.save(path / "coord.npy", rng.uniform(-50, 50, (n, 3)).astype(np.float32))
    strength = np.tanh(rng.uniform(0, 3, n)).astype(np.float32)
    np.save(path / "strength.npy", strength[:, None] if strength_2d else strength)
    if stored is not None:
        np.save(path / "segment.npy", np.asarray(stored, dtype=np.int32))
    return path


def test_layout_and_labels(tmp_path):
    write_frame(tmp_path, "training", "segment-1", "1000", 4, [-1, 0, 21, 17], strength_2d=True)
    write_frame(tmp_path, "training", "segment-1", "2000", 2, [3, 3])
    write_frame(tmp_path, "validation", "segment-2", "1000", 3, [6, 6, 13])
    write_frame(tmp_path, "testing", "segment-3", "1000", 5)
    reader = WaymoReader(tmp_path)
    assert reader.splits() == ["train", "val", "test"]
    assert reader.scan_ids("train") == ["segment-1/1000", "segment-1/2000"]
    scan = reader.load("train", "segment-1/1000")
    assert scan.segment.tolist() == [-1, 0, 21, 17]
    assert scan.extra["raw_segment"].tolist() == [0, 1, 22, 18]
    assert scan.feat.shape == (4, 1) and (np.abs(scan.feat) <= 1).all()
    np.testing.assert_array_equal(scan.coord, np.load(tmp_path / "training/segment-1/1000/coord.npy"))
    names = reader.label_spec.names
    assert [names[i] for i in reader.load("val", "segment-2/1000").segment] == ["pedestrian", "pedestrian", "building"]
    assert reader.load("test", "segment-3/1000").segment is None


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="none of the split folders"):
        WaymoReader(tmp_path).splits()
    frame = write_frame(tmp_path, "training", "s", "1", 4, [0, 1, 2, 22])
    reader = WaymoReader(tmp_path)
    with pytest.raises(DatasetError, match=rf"{frame / 'segment.npy'}: raw label ids \[23\]"):
        reader.load("train", "s/1")
    np.save(frame / "segment.npy", np.zeros(5, np.int32))
    with pytest.raises(DatasetError, match=f"{frame / 'segment.npy'}: 5 labels for 4 points"):
        reader.load("train", "s/1")
    (frame / "segment.npy").unlink()
    with pytest.raises(DatasetError, match=f"{frame / 'segment.npy'}: label file missing"):
        reader.load("train", "s/1")
    coord = np.load(frame / "coord.npy")
    coord[0, 2] = np.nan
    np.save(frame / "coord.npy", coord)
    with pytest.raises(DatasetError, match=f"{frame / 'coord.npy'}: 1 points have NaN"):
        reader.load("train", "s/1")
    np.save(frame / "coord.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(DatasetError, match=f"{frame / 'coord.npy'}: empty scan"):
        reader.load("train", "s/1")
    (frame / "coord.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=f"{frame / 'coord.npy'}: not a readable .npy"):
        reader.load("train", "s/1")
