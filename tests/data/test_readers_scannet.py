"""ScanNet reader: the real Pointcept scene and mmdet3d sample, synthetic rooms, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dos.data.errors import DatasetError
from dos.data.readers import open_reader
from dos.data.readers.scannet import ScanNetReader

SCENE = "scannet/FDU-PRML-2024-final-PJ/scene0011_00"
MMDET3D = "scannet/mmdet3d/tests/data/scannet"


def linked_scene(real_fixtures: Path, tmp_path: Path) -> Path:
    """A Pointcept root whose val split is the real scene (a symlink: fixtures are never copied)."""
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "scene0011_00").symlink_to(real_fixtures / SCENE, target_is_directory=True)
    return tmp_path


def class_counts(reader, segment) -> dict:
    ids, counts = np.unique(segment, return_counts=True)
    return {reader.label_spec.names[i] if i >= 0 else None: int(c) for i, c in zip(ids, counts)}


def test_real_pointcept_scene(real_fixtures, tmp_path):
    root = linked_scene(real_fixtures, tmp_path)
    reader = ScanNetReader(root)
    assert reader.splits() == ["val"] and reader.scan_ids("val") == ["scene0011_00"]
    scan = reader.load("val", "scene0011_00")
    assert scan.num_points == 237360 and scan.feat.shape == (237360, 6)
    color = np.load(real_fixtures / SCENE / "color.npy")
    np.testing.assert_allclose(scan.feat[:, :3], color / 255.0, rtol=1e-6)
    assert scan.extra["feat_names"] == ["r", "g", "b", "nx", "ny", "nz"]
    counts = class_counts(reader, scan.segment)
    assert counts[None] == 42479 and counts["wall"] == 36885 and counts["floor"] == 54068
    assert counts["counter"] == 5743 and "bed" not in counts
    assert scan.extra["instance"].max() == 32

    fine = open_reader("scannet200", root).load("val", "scene0011_00")
    counts200 = class_counts(open_reader("scannet200", root), fine.segment)
    assert counts200["wall"] == 36885 and counts200["kitchen counter"] == 5743 and counts200["tv"] == 9908


def test_real_mmdet3d_sample(real_fixtures):
    reader = ScanNetReader(real_fixtures / MMDET3D)
    assert reader.layout == "mmdet3d" and reader.splits() == ["all"]
    scan = reader.load("all", "scene0000_00")
    assert scan.num_points == 100 and scan.feat.shape == (100, 3) and scan.feat.max() <= 1.0
    raw = set(scan.extra["raw_segment"].tolist())
    assert raw == {0, 1, 2, 3, 4, 6, 7, 8, 14, 15, 16, 18, 22, 24, 25, 33, 38, 40}
    counts = class_counts(reader, scan.segment)
    # NYU40 1 wall: 14 points, 2 floor: 13, 33 toilet: 2; 0, 15, 18, 22, 25, 38, 40 are not ScanNet20 classes.
    assert counts["wall"] == 14 and counts["floor"] == 13 and counts["toilet"] == 2
    assert counts[None] == 7 + 4 + 1 + 4 + 2 + 4 + 5
    with pytest.raises(DatasetError, match="20 NYU40-derived classes"):
        ScanNetReader(real_fixtures / MMDET3D, classes=200)


def write_room(root: Path, split: str, scene: str, n: int, seg20=None, seg200=None, normal=True) -> Path:
    folder = root / split / scene
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    np.save(folder / "coord.npy", rng.uniform(0, 5, (n, 3)).astype(np.float32))
    np.save(folder / "color.npy", rng.integers(0, 256, (n, 3)).astype(np.uint8))
    if normal:
        np.save(folder / "normal.npy", rng.normal(size=(n, 3)).astype(np.float32))
    for name, values in (("segment20", seg20), ("segment200", seg200)):
        if values is not None:
            np.save(folder / f"{name}.npy", np.asarray(values, np.int64))
    np.save(folder / "instance.npy", np.full(n, -1, np.int64))
    return folder


def test_synthetic_rooms(tmp_path):
    names200 = [f"thing{i}" for i in range(200)]
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump({
        "names": [f"coarse{i}" for i in range(20)], "names200": names200,
        "head": names200[:66], "common": names200[66:134], "tail": names200[134:]}))
    write_room(tmp_path, "train", "scene0000_00", 4, [0, 19, -1, 3], [0, 199, -1, 150])
    write_room(tmp_path, "val", "scene0001_00", 2, [1, 1], [2, 2], normal=False)
    coarse = open_reader("synthetic-rooms", tmp_path)
    assert coarse.splits() == ["train", "val"] and coarse.label_spec.names[19] == "coarse19"
    assert coarse.load("train", "scene0000_00").segment.tolist() == [0, 19, -1, 3]
    assert coarse.load("val", "scene0001_00").feat.shape == (2, 3)  # no normals written
    fine = open_reader("synthetic-rooms", tmp_path, classes=200)
    assert fine.label_spec.num_classes == 200 and fine.label_spec.groups["tail"][0] == "thing134"
    assert fine.load("train", "scene0000_00").segment.tolist() == [0, 199, -1, 150]


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="none of the split folders"):
        ScanNetReader(tmp_path).splits()
    folder = write_room(tmp_path, "train", "scene0000_00", 3, [0, 20, 1])
    reader = ScanNetReader(tmp_path)
    with pytest.raises(DatasetError, match=rf"{folder / 'segment20.npy'}: label ids \[20\]"):
        reader.load("train", "scene0000_00")
    np.save(folder / "segment20.npy", np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match=f"{folder / 'segment20.npy'}: 2 labels for 3 points"):
        reader.load("train", "scene0000_00")
    (folder / "segment20.npy").unlink()
    with pytest.raises(DatasetError, match=f"{folder / 'segment20.npy'}: label file missing"):
        reader.load("train", "scene0000_00")
    np.save(folder / "color.npy", np.zeros((4, 3), np.uint8))
    with pytest.raises(DatasetError, match=f"{folder / 'color.npy'}: 4 colours for 3 points"):
        reader.load("train", "scene0000_00")
    with pytest.raises(DatasetError, match="20 or 200"):
        ScanNetReader(tmp_path, classes=40)
