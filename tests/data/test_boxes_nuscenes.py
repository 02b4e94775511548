"""3D boxes of nuScenes key frames: mmdet3d info pickles (the real fixture) and hand-written v1.0 tables."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dos.data.boxes import DETECTION_CLASSES, wrap_angle
from dos.data.errors import DatasetError
from dos.data.readers.nuscenes import NuScenesReader

FIXTURE = "nuscenes/mmdet3d/tests/data/nuscenes"
TOKEN = "fd8420396768425eabec9bdddf7e64b6"


def test_real_info_boxes_match_the_pickle(real_fixtures):
    root = real_fixtures / FIXTURE
    info = pickle.loads((root / "nus_info.pkl").read_bytes())
    classes = info["metainfo"]["CLASSES"]
    instances = info["data_list"][0]["instances"]
    boxes = NuScenesReader(root, box_convention="mmdet3d-v0").load("all", TOKEN).extra["boxes"]
    assert len(boxes) == len(instances) == 37
    raw = np.array([i["bbox_3d"] for i in instances])
    assert boxes.names() == [classes[i["bbox_label_3d"]] for i in instances]
    np.testing.assert_allclose(boxes.center, raw[:, :3])
    np.testing.assert_allclose(boxes.size, raw[:, 3:6])  # mmdet3d < 1.0: w, l, h as the devkit's
    np.testing.assert_allclose(boxes.yaw, wrap_angle(-raw[:, 6] - np.pi / 2))
    np.testing.assert_allclose(boxes.velocity, [i["velocity"] for i in instances])
    assert boxes.num_points.tolist() == [int(i["num_lidar_pts"]) for i in instances]


def test_real_info_boxes_are_physically_plausible(real_fixtures):
    root = real_fixtures / FIXTURE
    boxes = NuScenesReader(root, box_convention="mmdet3d-v0").load("all", TOKEN).extra["boxes"]
    # The fixture's first 10 instances carry the labels 0..9 in turn (every class once, for mmdet3d's tests):
    # a "bicycle" of 4.25 m. From the 11th on the labels are the annotations'.
    real = boxes.select(np.arange(10, len(boxes)))
    names = np.array(real.names())
    cars, people = real.size[names == "car"], real.size[names == "pedestrian"]
    cones = real.size[names == "traffic_cone"]
    assert len(cars) == 19 and len(people) == 5 and len(cones) == 3
    np.testing.assert_allclose(np.median(cars, axis=0), (1.9, 4.5, 1.6), atol=0.3)
    np.testing.assert_allclose(np.median(people, axis=0), (0.7, 0.7, 1.7), atol=0.2)
    assert (cones < 1.0).all()
    # a moving object drives forwards: its velocity's heading is its yaw (all 24 moving boxes of the pickle)
    speed = np.hypot(*boxes.velocity.T)
    moving = speed > 0.5
    heading = np.arctan2(boxes.velocity[moving, 1], boxes.velocity[moving, 0])
    assert moving.sum() >= 10 and np.abs(wrap_angle(heading - boxes.yaw[moving])).max() < 0.3
    # ... which the mmdet3d >= 1.0 reading of the same numbers contradicts: the pickle is in the old convention
    new = NuScenesReader(root).load("all", TOKEN).extra["boxes"]
    assert np.median(np.abs(wrap_angle(heading - new.yaw[moving]))) > 0.5
    np.testing.assert_allclose(new.size[:, [1, 0]], boxes.size[:, [0, 1]])


def test_real_info_pose(real_fixtures):
    scan = NuScenesReader(real_fixtures / FIXTURE).load("all", TOKEN)
    pose = scan.extra["ego_pose"]
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
    assert 1.8 < pose[2, 3] - 0.0 < 1.9  # the LiDAR sits 1.84 m above the ego origin (ego z = 0 here)


def _quat(yaw_deg: float) -> list[float]:
    half = np.deg2rad(yaw_deg) / 2
    return [float(np.cos(half)), 0.0, 0.0, float(np.sin(half))]


def write_tables(root: Path, **override) -> Path:
    """One scene of 3 samples 0.5 s apart; the ego drives along +x heading +y (yaw 90 deg); the LiDAR sits
    1 m ahead and 2 m above the ego origin. A car (instance i0) is annotated in all three samples, moving
    +1 m per sample along global +x; a pedestrian in the middle one only; an animal (dropped) too."""
    tables = root / "v1.0-mini"
    tables.mkdir(parents=True)
    (root / "samples/LIDAR_TOP").mkdir(parents=True)
    for i in range(3):
        np.zeros((4, 5), np.float32).tofile(root / f"samples/LIDAR_TOP/x{i}.pcd.bin")
    content = {
        "scene": [{"token": "sc", "name": "scene-0061"}],
        "sample": [{"token": f"s{i}", "scene_token": "sc", "timestamp": 1_000_000 + 500_000 * i} for i in range(3)],
        "sample_data": [{"token": f"sd{i}", "sample_token": f"s{i}", "filename": f"samples/LIDAR_TOP/x{i}.pcd.bin",
                         "is_key_frame": True, "ego_pose_token": f"ep{i}", "calibrated_sensor_token": "cs"}
                        for i in range(3)],
        "ego_pose": [{"token": f"ep{i}", "translation": [10.0 + i, 20.0, 0.0], "rotation": _quat(90)}
                     for i in range(3)],
        "calibrated_sensor": [{"token": "cs", "translation": [1.0, 0.0, 2.0], "rotation": _quat(0)}],
        "category": [{"token": "c-car", "name": "vehicle.car"}, {"token": "c-ped", "name": "human.pedestrian.adult"},
                     {"token": "c-animal", "name": "animal"}],
        "attribute": [{"token": "moving", "name": "vehicle.moving"},
                      {"token": "standing", "name": "pedestrian.standing"}],
        "instance": [{"token": "i0", "category_token": "c-car"}, {"token": "i1", "category_token": "c-ped"},
                     {"token": "i2", "category_token": "c-animal"}],
        "sample_annotation": [
            {"token": f"a{i}", "sample_token": f"s{i}", "instance_token": "i0", "attribute_tokens": ["moving"],
             "translation": [12.0 + i, 25.0, 1.0], "size": [2.0, 4.5, 1.6], "rotation": _quat(90),
             "prev": f"a{i - 1}" if i else "", "next": f"a{i + 1}" if i < 2 else "", "num_lidar_pts": 10 * i}
            for i in range(3)] + [
            {"token": "p1", "sample_token": "s1", "instance_token": "i1", "attribute_tokens": ["standing"],
             "translation": [11.0, 30.0, 1.0], "size": [0.7, 0.6, 1.8], "rotation": _quat(0), "prev": "", "next": "",
             "num_lidar_pts": 3},
            {"token": "d1", "sample_token": "s1", "instance_token": "i2", "attribute_tokens": [],
             "translation": [11.0, 31.0, 0.5], "size": [0.5, 1.0, 0.5], "rotation": _quat(0), "prev": "", "next": "",
             "num_lidar_pts": 1}],
    }
    content.update(override)
    for name, rows in content.items():
        (tables / f"{name}.json").write_text(json.dumps(rows))
    return tables


def test_tables_boxes_in_the_sensor_frame(tmp_path):
    write_tables(tmp_path)
    reader = NuScenesReader(tmp_path)
    assert reader.scan_ids("train") == ["s0", "s1", "s2"]
    scan = reader.load("train", "s1")
    boxes = scan.extra["boxes"]
    assert boxes.names() == ["car", "pedestrian"]  # the animal is not a detection class
    # global (13, 25, 1) - ego (11, 20, 0) = (2, 5, 1), turned by -90 deg = (5, -2, 1), minus the LiDAR's (1, 0, 2)
    np.testing.assert_allclose(boxes.center[0], (4.0, -2.0, -1.0), atol=1e-12)
    np.testing.assert_allclose(boxes.size[0], (2.0, 4.5, 1.6))
    np.testing.assert_allclose(boxes.yaw[0], 0.0, atol=1e-12)  # heading +y globally = the ego's heading
    # centred difference: (14 - 12) m along global +x over 1 s = (2, 0) globally = (0, -2) in the sensor frame
    np.testing.assert_allclose(boxes.velocity[0], (0.0, -2.0), atol=1e-12)
    assert boxes.num_points.tolist() == [10, 3] and boxes.attribute == ["vehicle.moving", "pedestrian.standing"]
    assert np.isnan(boxes.velocity[1]).all()  # a single annotation: unknown
    np.testing.assert_allclose(boxes.yaw[1], -np.pi / 2, atol=1e-12)
    pose = scan.extra["ego_pose"]  # sensor -> global: the box centre goes back to its global position
    np.testing.assert_allclose(pose[:3, :3] @ boxes.center[0] + pose[:3, 3], (13.0, 25.0, 1.0), atol=1e-12)
    # one-sided differences at the ends of the track: (13 - 12) m over 0.5 s
    np.testing.assert_allclose(reader.load("train", "s0").extra["boxes"].velocity[0], (0.0, -2.0), atol=1e-12)
    # the ego keeps pace with the car: the same place in every frame
    np.testing.assert_allclose(reader.load("train", "s2").extra["boxes"].center[0], (4.0, -2.0, -1.0), atol=1e-12)


def test_tables_velocity_is_unknown_over_a_long_gap(tmp_path):
    samples = [{"token": f"s{i}", "scene_token": "sc", "timestamp": 4_000_000 * i} for i in range(3)]
    write_tables(tmp_path, sample=samples)
    assert np.isnan(NuScenesReader(tmp_path).load("train", "s1").extra["boxes"].velocity).all()


def test_tables_without_annotations_have_no_boxes(tmp_path):
    tables = write_tables(tmp_path)
    (tables / "sample_annotation.json").unlink()
    assert "boxes" not in NuScenesReader(tmp_path).load("train", "s1").extra


@pytest.mark.parametrize("table, change, message", [
    ("sample_annotation", {"size": [2.0, 4.5]}, "'size' is not a list of 3 finite numbers"),
    ("sample_annotation", {"rotation": [0, 0, 0, 0]}, "'rotation' is a zero quaternion"),
    ("sample_annotation", {"instance_token": "nope"}, "no record nope"),
    ("sample_annotation", {"attribute_tokens": "moving"}, "'attribute_tokens' is not a list of strings"),
    ("ego_pose", {"translation": [1.0, "a", 0.0]}, "'translation' is not a list of 3 finite numbers"),
    ("sample", {"timestamp": "soon"}, "'timestamp' is not a finite number"),
])
def test_tables_malformed_input_names_the_file(tmp_path, table, change, message):
    tables = write_tables(tmp_path)
    rows = json.loads((tables / f"{table}.json").read_text())
    rows[0].update(change)
    (tables / f"{table}.json").write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match=message) as error:
        NuScenesReader(tmp_path).load("train", "s0")
    expected = "instance.json" if "no record" in message else f"{table}.json"
    assert str(tables / expected) in str(error.value)


def test_info_malformed_instances_name_the_file(real_fixtures, tmp_path):
    source = real_fixtures / FIXTURE
    info = pickle.loads((source / "nus_info.pkl").read_bytes())
    info["data_list"][0]["instances"][3]["bbox_3d"] = [1.0, 2.0]
    path = tmp_path / "nus_info.pkl"
    path.write_bytes(pickle.dumps(info))
    (tmp_path / "samples").symlink_to(source / "samples")
    with pytest.raises(DatasetError, match="instance 3: bbox_3d is not 7 numbers") as error:
        NuScenesReader(tmp_path).load("all", TOKEN)
    assert str(path) in str(error.value)
    with pytest.raises(DatasetError, match="box_convention"):
        NuScenesReader(source, box_convention="lidar").load("all", TOKEN)


def test_detection_map_covers_the_23_categories():
    import yaml

    data = yaml.safe_load((Path(__file__).parents[2] / "dos/data/labels/nuscenes_detection.yaml").read_text())
    assert len(data["detection"]) + len(data["dropped"]) == 23
    assert set(data["detection"].values()) == set(DETECTION_CLASSES)
