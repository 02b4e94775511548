"""The packaged label specs: facts checked against the official files where we have them."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dos.data.errors import DatasetError
from dos.data.labels import label_spec_from_file, load_label_spec


def test_semantickitti_matches_the_official_config(real_fixtures):
    official = yaml.safe_load((real_fixtures / "semantickitti/semantic-kitti-api/config/semantic-kitti.yaml").read_text())
    spec = load_label_spec("semantickitti")
    assert spec.num_classes == 19
    # Our training ids are the official ones minus one; official 0 (unlabeled) is our ignore.
    for raw, train in official["learning_map"].items():
        assert spec.map_raw(np.array([raw]), "test")[0] == train - 1
    names = [official["labels"][official["learning_map_inv"][i]] for i in range(1, 20)]
    assert list(spec.names) == names
    assert spec.raw_names == {int(k): v for k, v in official["labels"].items()}
    for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
        assert list(spec.splits[ours]) == [f"{seq:02d}" for seq in official["split"][theirs]]


def test_nuscenes_32_raw_classes_to_16():
    spec = load_label_spec("nuscenes")
    assert spec.num_classes == 16 and len(spec.raw_names) == 32
    mapped = spec.map_raw(np.arange(32), "test")
    assert sorted(set(mapped.tolist()) - {-1}) == list(range(16))  # every class is reached
    by_name = {spec.raw_names[raw]: spec.names[t] if t >= 0 else None for raw, t in enumerate(mapped)}
    assert by_name["vehicle.car"] == "car"
    assert by_name["human.pedestrian.police_officer"] == "pedestrian"
    assert by_name["vehicle.bus.bendy"] == by_name["vehicle.bus.rigid"] == "bus"
    assert by_name["static.manmade"] == "manmade"
    for ignored in ("noise", "animal", "vehicle.ego", "static.other", "movable_object.debris",
                    "vehicle.emergency.police", "human.pedestrian.stroller"):
        assert by_name[ignored] is None
    with pytest.raises(DatasetError, match="lidarseg.bin"):
        spec.map_raw(np.array([3, 32]), "x_lidarseg.bin")


def test_waymo_is_raw_minus_one():
    spec = load_label_spec("waymo")
    assert spec.num_classes == 22
    assert spec.map_raw(np.arange(23), "t").tolist() == list(range(-1, 22))
    assert spec.names[0] == "car" and spec.names[-1] == "sidewalk"


def test_scannet20_nyu40_ids():
    spec = load_label_spec("scannet20")
    assert spec.num_classes == 20
    raw = np.array([0, 1, 2, 33, 39, 40, 13])
    assert [spec.names[t] if t >= 0 else None for t in spec.map_raw(raw, "t")] == \
        [None, "wall", "floor", "toilet", "otherfurniture", None, None]
    with pytest.raises(DatasetError, match="41"):
        spec.map_raw(np.array([41]), "mask.bin")


def test_scannet200_groups_partition_the_classes():
    spec = load_label_spec("scannet200")
    assert spec.num_classes == 200 and len(set(spec.names)) == 200
    assert [len(spec.groups[g]) for g in ("head", "common", "tail")] == [66, 68, 66]
    group = spec.group_of_class()
    assert np.bincount(group).tolist() == [66, 68, 66]
    assert group[spec.names.index("wall")] == 0 and group[spec.names.index("luggage")] == 2


def test_s3dis_and_parisluco3d():
    s3dis = load_label_spec("s3dis")
    assert s3dis.num_classes == 13 and s3dis.names[-1] == "clutter"
    assert s3dis.splits["val"] == ("Area_5",)
    paris = load_label_spec("parisluco3d")
    kitti = load_label_spec("semantickitti")
    assert paris.names == kitti.names and np.array_equal(paris.lookup, kitti.lookup)


def test_check_train_ids_rejects_out_of_range():
    spec = load_label_spec("s3dis")
    assert spec.check_train_ids(np.array([-1, 0, 12], dtype=np.int16), "s.npy").dtype == np.int64
    with pytest.raises(DatasetError, match=r"segment\.npy.*13"):
        spec.check_train_ids(np.array([0, 13]), "segment.npy")
    with pytest.raises(DatasetError, match="-2"):
        spec.check_train_ids(np.array([-2]), "segment.npy")


def test_unknown_spec_and_bad_files(tmp_path):
    with pytest.raises(DatasetError, match="no label spec named"):
        load_label_spec("kitti360")
    with pytest.raises(DatasetError, match="labels.yaml"):
        label_spec_from_file(tmp_path / "labels.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"names": ["a", "b"], "learning_map": {5: 2}}))
    with pytest.raises(DatasetError, match="bad.yaml"):
        label_spec_from_file(bad)
    bad.write_text(yaml.safe_dump({"names": ["a"], "names200": ["x", "y"], "head": ["x"], "common": [], "tail": []}))
    with pytest.raises(DatasetError, match="head/common/tail"):
        label_spec_from_file(bad, "names200")


def test_synthetic_label_files(tmp_path):
    lidar = tmp_path / "lidar.yaml"
    lidar.write_text(yaml.safe_dump({"names": ["road", "car"], "learning_map": {0: -1, 40: 0, 60: 0, 10: 1}}))
    spec = label_spec_from_file(lidar)
    assert spec.map_raw(np.array([0, 40, 60, 10]), "t").tolist() == [-1, 0, 0, 1]
    with pytest.raises(DatasetError, match="11"):
        spec.map_raw(np.array([11]), "t")
    rooms = tmp_path / "rooms.yaml"
    rooms.write_text(yaml.safe_dump({"names": ["wall", "floor"], "names200": ["wall", "floor", "lamp"],
                                     "head": ["wall", "floor"], "common": ["lamp"], "tail": []}))
    assert label_spec_from_file(rooms).groups == {}
    fine = label_spec_from_file(rooms, "names200")
    assert fine.num_classes == 3 and fine.group_of_class().tolist() == [0, 0, 1]
    # The generator may give the groups as training ids instead of names.
    rooms.write_text(yaml.safe_dump({"names": ["wall"], "names200": ["wall", "floor", "lamp"],
                                     "head": [0], "common": [2, 1], "tail": []}))
    assert label_spec_from_file(rooms, "names200").groups == {"head": ("wall",), "common": ("lamp", "floor"),
                                                              "tail": ()}
    rooms.write_text(yaml.safe_dump({"names": ["wall"], "names200": ["wall"], "head": [0, 3], "common": [],
                                     "tail": []}))
    with pytest.raises(DatasetError, match="class id 3"):
        label_spec_from_file(rooms, "names200")
