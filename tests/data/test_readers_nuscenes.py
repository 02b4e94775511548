"""nuScenes-lidarseg reader: mmdet3d info pickles (real samples) and the official JSON tables."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from dos.data.errors import DatasetError
from dos.data.readers.mmdet3d import info_split_name
from dos.data.readers.nuscenes import NuScenesReader

LABELLED = "nuscenes/mmdet3d_pr2859/tests/data/nuscenes"
UNLABELLED = "nuscenes/mmdet3d/tests/data/nuscenes"


def names_of(reader, segment):
    ids, counts = np.unique(segment, return_counts=True)
    return {reader.label_spec.names[i] if i >= 0 else None: int(c) for i, c in zip(ids, counts)}


def test_real_labelled_sample(real_fixtures):
    reader = NuScenesReader(real_fixtures / LABELLED)
    assert reader.splits() == ["all"]
    assert reader.scan_ids("all") == ["fd8420396768425eabec9bdddf7e64b6", "6eb8a3ff0abf4f3a9380a48f2a0b87ef"]
    scan = reader.load("all", "fd8420396768425eabec9bdddf7e64b6")
    assert scan.coord.shape == (40, 3) and scan.feat.shape == (40, 1)
    assert 0.0 <= scan.feat.min() and scan.feat.max() <= 1.0  # intensity / 255
    raw, counts = np.unique(scan.extra["raw_segment"], return_counts=True)
    assert dict(zip(raw.tolist(), counts.tolist())) == {17: 2, 24: 15, 27: 1, 28: 12, 30: 1, 31: 9}
    assert names_of(reader, scan.segment) == {"car": 2, "driveable_surface": 15, "terrain": 1, "manmade": 12,
                                              "vegetation": 1, None: 9}
    assert scan.extra["ring"].dtype == np.int64 and 0 <= scan.extra["ring"].min() <= scan.extra["ring"].max() < 32


def test_real_unlabelled_sample_and_explicit_info(real_fixtures):
    reader = NuScenesReader(real_fixtures / UNLABELLED, info="nus_info.pkl")
    scan = reader.load("all", "fd8420396768425eabec9bdddf7e64b6")
    assert scan.num_points == 100 and scan.segment is None


def test_info_split_names():
    assert info_split_name(Path("nuscenes_infos_train.pkl")) == "train"
    assert info_split_name(Path("scannet_infos_val.pkl")) == "val"
    assert info_split_name(Path("nus_info.pkl")) == "all"


def write_info(path: Path, entries: list[dict]) -> None:
    with path.open("wb") as handle:
        pickle.dump({"metainfo": {"version": "v1.0-mini"}, "data_list": entries}, handle)


def write_sweep(root: Path, name: str, n: int, labels: np.ndarray | None = None, version: str = "v1.0-mini",
                token: str | None = None) -> None:
    rng = np.random.default_rng(n)
    pts = np.concatenate([rng.uniform(-20, 20, (n, 3)), rng.uniform(0, 255, (n, 1)),
                          rng.integers(0, 32, (n, 1))], axis=1).astype(np.float32)
    (root / "samples/LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    pts.tofile(root / "samples/LIDAR_TOP" / name)
    if labels is not None:
        (root / "lidarseg" / version).mkdir(parents=True, exist_ok=True)
        np.asarray(labels, np.uint8).tofile(root / "lidarseg" / version / f"{token}_lidarseg.bin")


def test_info_pickles_per_split_and_bad_labels(tmp_path):
    write_sweep(tmp_path, "a.pcd.bin", 6, [17, 17, 24, 0, 9, 12], token="la")
    write_sweep(tmp_path, "b.pcd.bin", 4)
    write_info(tmp_path / "nuscenes_infos_train.pkl", [
        {"token": "s1", "lidar_points": {"lidar_path": "a.pcd.bin"}, "pts_semantic_mask_path": "la_lidarseg.bin"}])
    write_info(tmp_path / "nuscenes_infos_test.pkl", [{"token": "s2", "lidar_points": {"lidar_path": "b.pcd.bin"}}])
    reader = NuScenesReader(tmp_path)
    assert reader.splits() == ["test", "train"]
    assert reader.load("train", "s1").segment.tolist() == [3, 3, 10, -1, 0, 7]
    assert reader.load("test", "s2").segment is None

    label = tmp_path / "lidarseg/v1.0-mini/la_lidarseg.bin"
    np.array([17, 17, 24], np.uint8).tofile(label)
    with pytest.raises(DatasetError, match=f"{label}: 3 labels for 6 points"):
        reader.load("train", "s1")
    np.array([17, 17, 24, 0, 9, 40], np.uint8).tofile(label)
    with pytest.raises(DatasetError, match=rf"{label}: raw label ids \[40\]"):
        reader.load("train", "s1")
    label.unlink()
    with pytest.raises(DatasetError, match=f"{label}: lidarseg label file missing"):
        reader.load("train", "s1")
    sweep = tmp_path / "samples/LIDAR_TOP/a.pcd.bin"
    sweep.write_bytes(sweep.read_bytes()[:-4])
    with pytest.raises(DatasetError, match=f"{sweep}.*multiple of the 20-byte record"):
        reader.load("train", "s1")


def write_tables(root: Path, keyframes: dict[str, tuple[str, int, list[int]]]) -> None:
    """keyframes: sample token -> (scene name, points, labels)."""
    tables = root / "v1.0-mini"
    tables.mkdir(parents=True)
    scenes = sorted({scene for scene, _, _ in keyframes.values()})
    scene_rows = [{"token": f"t-{name}", "name": name} for name in scenes]
    sample_rows, data_rows, seg_rows = [], [], []
    for i, (sample, (scene, n, labels)) in enumerate(keyframes.items()):
        sample_rows.append({"token": sample, "scene_token": f"t-{scene}", "timestamp": i})
        name = f"n000__LIDAR_TOP__{i}.pcd.bin"
        write_sweep(root, name, n, labels, token=f"sd{i}")
        data_rows.append({"token": f"sd{i}", "sample_token": sample, "is_key_frame": True,
                          "filename": f"samples/LIDAR_TOP/{name}"})
        seg_rows.append({"token": f"ls{i}", "sample_data_token": f"sd{i}",
                         "filename": f"lidarseg/v1.0-mini/sd{i}_lidarseg.bin"})
        # Sweeps between key frames and camera images are not scans.
        data_rows.append({"token": f"sw{i}", "sample_token": sample, "is_key_frame": False,
                          "filename": f"sweeps/LIDAR_TOP/{name}"})
        data_rows.append({"token": f"cam{i}", "sample_token": sample, "is_key_frame": True,
                          "filename": f"samples/CAM_FRONT/{i}.jpg"})
    for table, rows in (("scene", scene_rows), ("sample", sample_rows), ("sample_data", data_rows),
                        ("lidarseg", seg_rows)):
        (tables / f"{table}.json").write_text(json.dumps(rows))


def test_official_tables(tmp_path):
    write_tables(tmp_path, {"s1": ("scene-0001", 5, [24, 24, 26, 30, 0]), "s2": ("scene-0001", 3, [2, 3, 4]),
                            "s3": ("scene-0002", 4, [23, 22, 21, 18])})
    # v1.0-mini has official lists (mini_train / mini_val), which do not name these scenes.
    with pytest.raises(DatasetError, match="scenes scene-0001, scene-0002 are in none of the official v1.0-mini"):
        NuScenesReader(tmp_path)
    (tmp_path / "splits.yaml").write_text(yaml.safe_dump({"train": ["scene-0001"], "val": ["scene-0002"]}))
    reader = NuScenesReader(tmp_path, split_file="splits.yaml")
    assert reader.splits() == ["train", "val"]
    assert reader.scan_ids("train") == ["s1", "s2"]
    assert reader.load("val", "s3").segment.tolist() == [9, 8, 5, 4]
    assert reader.load("train", "s2").segment.tolist() == [6, 6, 6]


def test_tables_missing_a_label_row(tmp_path):
    write_tables(tmp_path, {"s1": ("scene-0001", 5, [24] * 5), "s2": ("scene-0001", 3, [24] * 3)})
    seg = tmp_path / "v1.0-mini/lidarseg.json"
    seg.write_text(json.dumps(json.loads(seg.read_text())[:1]))
    with pytest.raises(DatasetError, match="lidarseg.json: no label for LIDAR_TOP key frame sd1"):
        NuScenesReader(tmp_path)


def test_missing_root_and_tables(tmp_path):
    with pytest.raises(DatasetError, match="dataset root folder not found"):
        NuScenesReader(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no info pickle, and 0 v1.0-"):
        NuScenesReader(tmp_path)


def test_duplicate_info_tokens_are_an_error(tmp_path):
    write_sweep(tmp_path, "a.pcd.bin", 4)
    write_sweep(tmp_path, "b.pcd.bin", 4)
    info = tmp_path / "nuscenes_infos_train.pkl"
    write_info(info, [{"token": "s1", "lidar_points": {"lidar_path": "a.pcd.bin"}},
                      {"token": "s1", "lidar_points": {"lidar_path": "b.pcd.bin"}}])
    with pytest.raises(DatasetError, match=f"{info}: entry 1 repeats token 's1'"):
        NuScenesReader(tmp_path)


@pytest.mark.parametrize("table, field", [("sample", "token"), ("lidarseg", "sample_data_token"),
                                          ("scene", "token"), ("sample_data", "token")])
def test_duplicate_table_tokens_are_an_error(tmp_path, table, field):
    write_tables(tmp_path, {"s1": ("scene-0001", 5, [24] * 5), "s2": ("scene-0002", 3, [24] * 3)})
    path = tmp_path / "v1.0-mini" / f"{table}.json"
    rows = json.loads(path.read_text())
    rows[1][field] = rows[0][field]
    path.write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match=f"{path}: {field} {rows[0][field]} occurs twice"):
        NuScenesReader(tmp_path)


def test_two_key_frames_of_one_sample_are_an_error(tmp_path):
    write_tables(tmp_path, {"s1": ("scene-0001", 5, [24] * 5), "s2": ("scene-0001", 3, [24] * 3)})
    path = tmp_path / "v1.0-mini/sample_data.json"
    rows = json.loads(path.read_text())
    for row in rows:
        row["sample_token"] = "s1"
    path.write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match=f"{path}: sample s1 has two LIDAR_TOP key frames"):
        NuScenesReader(tmp_path)
