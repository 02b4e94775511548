"""COLA coarse labels: the maps cover their datasets exactly, readers give coarse classes with `labels=cola`
(real samples, written scans, the synthetic benchmark), and bad option values are refused by name."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dos.data.dataset import SceneDataset
from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.labels.coarse import coarse_map_formats, coarse_sets, load_coarse_map, load_coarse_set
from dos.data.readers import open_reader
from dos.data.synthetic import street
from tests.conftest import REPO_ROOT
from tests.data.test_readers_parisluco3d import cloud, write_ply
from tests.data.test_readers_waymo import write_frame

COLA = ("driveable_ground", "structure", "vehicle", "nature", "living_being", "dynamic_object", "static_object",
        "other_ground")
SEMANTICKITTI = "semantickitti/mmdet3d/tests/data/semantickitti"
NUSCENES = "nuscenes/mmdet3d_pr2859/tests/data/nuscenes"
SYNTHETIC = ("synthetic-nuscenes", "synthetic-semantickitti", "synthetic-waymo", "synthetic-parisluco")
# The synthetic street's classes, by name, and their coarse class (street.py names; barrier / cone as nuScenes').
STREET_COARSE = {"road": "driveable_ground", "sidewalk": "other_ground", "terrain": "nature", "building": "structure",
                 "vegetation": "nature", "trunk": "nature", "car": "vehicle", "truck": "vehicle", "bus": "vehicle",
                 "bicycle": "vehicle", "motorcycle": "vehicle", "pedestrian": "living_being", "pole": "static_object",
                 "traffic-sign": "static_object", "fence": "structure", "barrier": "dynamic_object",
                 "traffic-cone": "dynamic_object"}


def fine_raw_ids(format_name: str) -> set[int]:
    if format_name == "synthetic-lidar":
        return set(street.learning_map())
    return set(np.flatnonzero(load_label_spec(format_name).known).tolist())


def coarse_counts(names, segment) -> dict:
    ids, counts = np.unique(segment, return_counts=True)
    return {names[i] if i >= 0 else None: int(c) for i, c in zip(ids, counts)}


# -- the data files --------------------------------------------------------------------------------------------
def test_sets():
    assert coarse_sets() == ["cola", "cola7"]
    assert load_coarse_set("cola") == (COLA, ("other",))
    names7, ignore7 = load_coarse_set("cola7")
    assert len(names7) == 7 and set(names7) | set(ignore7) == set(COLA) | {"other"}
    assert ignore7 == ("other", "dynamic_object")


@pytest.mark.parametrize("format_name", ["semantickitti", "nuscenes", "waymo", "parisluco3d", "synthetic-lidar"])
def test_each_map_covers_every_raw_class_exactly_once(format_name):
    assert format_name in coarse_map_formats()
    mapping, _ = load_coarse_map(format_name)
    assert set(mapping) == fine_raw_ids(format_name)  # YAML keys are unique: each raw id once
    assert set(mapping.values()) <= set(COLA) | {"other"}


@pytest.mark.parametrize("format_name", ["semantickitti", "nuscenes", "waymo", "parisluco3d"])
def test_each_training_class_falls_into_one_coarse_class(format_name):
    """The 19 / 16 / 22 training classes are unions of raw ids: all raw ids of one class share its coarse class."""
    spec, (mapping, _) = load_label_spec(format_name), load_coarse_map(format_name)
    coarse_of = {}
    for raw, coarse in mapping.items():
        train = int(spec.lookup[raw])
        if train >= 0:
            coarse_of.setdefault(spec.names[train], set()).add(coarse)
    assert set(coarse_of) == set(spec.names)
    assert {name: len(c) for name, c in coarse_of.items() if len(c) != 1} == {}


def test_published_entries():
    """Spot checks against the CoarseLabel repository's tables (and our two corrections of its SemanticKITTI one)."""
    kitti, _ = load_coarse_map("semantickitti")
    assert (kitti[48], kitti[31], kitti[52], kitti[99]) == ("other_ground", "living_being", "structure", "other")
    assert (kitti[253], kitti[257]) == ("living_being", "vehicle")  # the table's moving-bicyclist / moving-bus
    nus, _ = load_coarse_map("nuscenes")
    assert (nus[13], nus[11], nus[27], nus[29], nus[1]) == ("static_object", "dynamic_object", "nature", "other",
                                                            "living_being")
    assert load_coarse_map("parisluco3d")[0] == kitti


# -- readers with labels=cola ------------------------------------------------------------------------------------
def test_real_semantickitti_sample(real_fixtures):
    reader = open_reader("semantickitti", real_fixtures / SEMANTICKITTI, labels="cola")
    assert reader.label_spec.names == COLA and reader.label_spec.name == "cola/semantickitti"
    scan = reader.load("train", "00/000000")
    # raw {0 unlabeled: 2, 50 building: 25, 52 other-structure: 1, 70 vegetation: 17, 71 trunk: 3, 80 pole: 2}
    assert coarse_counts(COLA, scan.segment) == {None: 2, "structure": 26, "nature": 20, "static_object": 2}
    assert (scan.segment[scan.extra["raw_segment"] == 52] == COLA.index("structure")).all()  # ignored when fine


def test_real_nuscenes_sample(real_fixtures):
    reader = open_reader("nuscenes", real_fixtures / NUSCENES, labels="cola")
    scan = reader.load("all", "fd8420396768425eabec9bdddf7e64b6")
    # raw {17 car: 2, 24 driveable_surface: 15, 27 terrain: 1, 28 manmade: 12, 30 vegetation: 1, 31 ego: 9}
    assert coarse_counts(COLA, scan.segment) == {"vehicle": 2, "driveable_ground": 15, "nature": 2,
                                                 "structure": 12, None: 9}


def test_waymo_and_parisluco3d_written(tmp_path):
    # Waymo stores raw - 1: -1 undefined, 10 construction_cone, 16 curb, 17 road, 6 pedestrian
    write_frame(tmp_path / "waymo", "training", "seg", "000", 5, [-1, 10, 16, 17, 6])
    scan = open_reader("waymo", tmp_path / "waymo", labels="cola").load("train", "seg/000")
    assert [COLA[i] if i >= 0 else None for i in scan.segment] == [None, "dynamic_object", "other_ground",
                                                                    "driveable_ground", "living_being"]
    write_ply(tmp_path / "paris" / "val" / "a.ply", cloud(4, [40, 48, 257, 81]))
    scan = open_reader("parisluco3d", tmp_path / "paris", labels="cola").load("val", "a")
    assert [COLA[i] for i in scan.segment] == ["driveable_ground", "other_ground", "vehicle", "static_object"]


def test_synthetic_benchmark(smoke_benchmark):
    """Sources and the unseen target share the coarse classes; each point's coarse class is its fine class's."""
    for name in SYNTHETIC:
        fine = open_reader("synthetic-lidar", smoke_benchmark / name)
        coarse = open_reader("synthetic-lidar", smoke_benchmark / name, labels="cola")
        split = fine.splits()[0]
        scan_id = fine.scan_ids(split)[0]
        fine_seg, coarse_seg = fine.load(split, scan_id).segment, coarse.load(split, scan_id).segment
        expected = np.array([COLA.index(STREET_COARSE[fine.label_spec.names[i]]) if i >= 0 else -1
                             for i in fine_seg])
        np.testing.assert_array_equal(coarse_seg, expected)
        assert (coarse_seg >= 0).any()
    dataset = SceneDataset("synthetic-lidar", smoke_benchmark / "synthetic-parisluco", "val",
                           reader_options={"labels": "cola7"})
    assert dataset.num_classes == 7 and "dynamic_object" not in dataset.class_names
    assert int(dataset[0]["segment"].max()) < 7


def test_summary_counts_coarse_classes(real_fixtures):
    result = subprocess.run([sys.executable, "-m", "dos", "data", "summary", "--format", "semantickitti",
                             str(real_fixtures / SEMANTICKITTI), "--option", "labels=cola", "--json"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["label_spec"] == "cola/semantickitti" and summary["num_classes"] == 8
    train = summary["splits"]["train"]
    assert {k: v for k, v in train["classes"].items() if v} == {"structure": 26, "nature": 20, "static_object": 2}
    assert train["ignored"] == 2


# -- bad option values --------------------------------------------------------------------------------------------
def test_bad_option_values(tmp_path, real_fixtures):
    root = real_fixtures / SEMANTICKITTI
    with pytest.raises(DatasetError, match=r"labels='fine': not a coarse label set; known: cola, cola7"):
        open_reader("semantickitti", root, labels="fine")
    with pytest.raises(DatasetError, match=r"labels=8: not a coarse label set"):
        open_reader("semantickitti", root, labels=8)
    with pytest.raises(DatasetError, match=r"no coarse label map for format 'scannet'"):
        open_reader("scannet", tmp_path, labels="cola")
    # raw ids the coarse map does not know (a custom label config): refused, naming the map and the ids
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump({"names": ["a"], "learning_map": {0: -1, 7: 0}}))
    (tmp_path / "sequences" / "00" / "velodyne").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"map_synthetic-lidar.yaml: the coarse map does not match the raw ids"
                                           r".*without a coarse class: \[7\]"):
        open_reader("synthetic-lidar", tmp_path, labels="cola")
