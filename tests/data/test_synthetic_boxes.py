"""3D boxes of the synthetic LiDAR benchmark: what the generator records and what the reader reads back."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from dos.data.boxes import Boxes, points_in_boxes
from dos.data.boxfile import read_box_file, write_box_file
from dos.data.errors import DatasetError
from dos.data.readers import open_reader
from dos.data.synthetic import street
from dos.data.synthetic.benchmark import _rng, frame_boxes
from dos.data.synthetic.lidar import PROFILES, scan

NOISE = 0.15  # metres: the sensor's range noise (2 cm std) and its spurious returns stay well inside this
RAW_OF = {"car": 10, "truck": 18, "bus": 13, "bicycle": 11, "motorcycle": 15, "pedestrian": 30, "traffic_cone": 91,
          "barrier": 90}
PLAUSIBLE = {  # (low, high) of width, length, height in metres
    "car": ((1.6, 2.2), (3.6, 5.2), (1.4, 2.0)), "truck": ((2.3, 2.7), (7.0, 12.5), (2.5, 4.0)),
    "bus": ((2.5, 2.8), (9.5, 13.5), (3.0, 3.5)), "pedestrian": ((0.3, 0.6), (0.2, 0.4), (1.4, 2.0)),
    "bicycle": ((0.5, 0.8), (1.3, 2.0), (1.0, 1.1)), "motorcycle": ((0.6, 0.8), (1.9, 2.3), (1.0, 1.1)),
    "traffic_cone": ((0.3, 0.4), (0.3, 0.4), (0.5, 0.7)), "barrier": ((0.5, 0.7), (1.9, 2.1), (0.7, 0.9))}


def check_scan(points: np.ndarray, raw: np.ndarray, instance: np.ndarray, boxes: Boxes, box_instance: np.ndarray):
    names = np.array(boxes.names())
    for i in np.flatnonzero(box_instance > 0):
        own = (instance == box_instance[i]) & (raw == RAW_OF[names[i]])
        assert own.sum() == boxes.num_points[i]
        assert points_in_boxes(points[own], boxes.select([i]), NOISE).all()
    barriers = np.flatnonzero(names == "barrier")
    on_barrier = raw == RAW_OF["barrier"]
    assert boxes.num_points[barriers].sum() == on_barrier.sum()
    if barriers.size:
        assert points_in_boxes(points[on_barrier], boxes.select(barriers), NOISE).any(axis=0).all()
    for name, box in zip(names, boxes.size):
        assert all(lo <= v <= hi for v, (lo, hi) in zip(box, PLAUSIBLE[name])), (name, box)


def test_generated_scans_boxes_hold_their_points(smoke_benchmark):
    total = empty = 0
    for name in ("synthetic-nuscenes", "synthetic-waymo", "synthetic-semantickitti", "synthetic-parisluco"):
        reader = open_reader("synthetic-lidar", smoke_benchmark / name)
        for split in reader.splits():
            for scan_id in reader.scan_ids(split):
                loaded = reader.load(split, scan_id)
                boxes = loaded.extra["boxes"]
                assert np.all(boxes.velocity == 0)
                check_scan(loaded.coord, loaded.extra["raw_segment"], loaded.extra["instance"], boxes,
                           loaded.extra["box_instance"])
                total += len(boxes)
                empty += int((boxes.num_points == 0).sum())
    assert total > 100 and 0 < empty < total  # some objects within range are hidden behind others


def test_a_street_with_works_boxes_barriers_and_cones():
    """A construction zone on every street: barriers (no instance ids) and cones; a hidden object counts 0."""
    style = dataclasses.replace(street.STYLES["nuscenes"], works_prob=1.0)
    profile = PROFILES["nuscenes"]
    prims, ego_y, objects = street.build_street_objects(style, _rng(7, 1), 60.0)
    assert set(objects.boxes.attribute) >= {"vehicle.parked", "pedestrian.standing", ""}
    out = scan(prims, profile, _rng(7, 2), 360, (0.0, ego_y))
    origin = np.array([0.0, ego_y, profile.height])
    boxes, instance = frame_boxes(objects, len(prims), out["primitive"], origin, profile.max_range)
    names = boxes.names()
    assert "barrier" in names and "traffic_cone" in names
    check_scan(out["points"][:, :3], out["label"], out["instance"], boxes, instance)
    hidden = np.flatnonzero(boxes.num_points == 0)
    assert hidden.size and not np.isin(out["instance"], instance[hidden][instance[hidden] > 0]).any()


def test_building_the_street_with_objects_changes_nothing():
    style = street.STYLES["parisluco"]
    plain, y0 = street.build_street(style, _rng(3, 4), 80.0)
    prims, y1, objects = street.build_street_objects(style, _rng(3, 4), 80.0)
    assert y0 == y1 and all(np.array_equal(getattr(plain, f.name), getattr(prims, f.name))
                            for f in dataclasses.fields(prims))
    assert len(objects.boxes) > 10


def test_poses_and_dataset_samples(smoke_benchmark):
    from dos.data.dataset import SceneDataset

    dataset = SceneDataset("synthetic-lidar", smoke_benchmark / "synthetic-nuscenes", "train")
    first, second = dataset[0], dataset[1]
    assert first["name"].endswith("/000000") and second["name"].endswith("/000001")
    np.testing.assert_allclose(first["ego_pose"].numpy(), np.eye(4))
    np.testing.assert_allclose(second["ego_pose"].numpy()[:3, 3], (5.0, 0.0, 0.0))  # smoke: 5 m a frame
    # a parked object seen from two frames: the same box, moved by the pose
    a, b = first["boxes"], second["boxes"]
    common = sorted(set(map(tuple, np.round(a.center, 6))) & set(map(tuple, np.round(b.center + (5.0, 0, 0), 6))))
    assert common


def test_box_file_round_trip_and_corruption(smoke_benchmark, tmp_path):
    boxes = Boxes(np.array([[1.0, 2.0, 0.5], [3.0, -4.0, 0.2]]), np.array([[1.9, 4.5, 1.6], [0.5, 0.6, 1.7]]),
                  np.array([0.3, -2.0]), np.array([0, 5]), np.array([[np.nan, 0.5], [0.0, 0.0]]), np.array([12, 0]),
                  ["vehicle.parked", "pedestrian.standing"])
    path = tmp_path / "boxes.json"
    write_box_file(path, boxes, np.array([4, 9]))
    again, instance = read_box_file(path)
    for field in ("center", "size", "yaw", "label", "velocity", "num_points"):
        np.testing.assert_array_equal(getattr(again, field), getattr(boxes, field))
    assert again.attribute == boxes.attribute and instance.tolist() == [4, 9]

    root = tmp_path / "copy"
    shutil.copytree(smoke_benchmark / "synthetic-nuscenes", root)
    box_file = root / "sequences/00/boxes/000000.json"
    box_file.write_text(box_file.read_text().replace('"size": [', '"size": [-', 1))
    with pytest.raises(DatasetError, match="box 0: 'size' is not 3 finite numbers|a size is not positive") as error:
        open_reader("synthetic-lidar", root).load("train", "00/000000")
    assert str(box_file) in str(error.value)
    box_file.write_text("{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_reader("synthetic-lidar", root).load("train", "00/000000")
    box_file.unlink()
    with pytest.raises(DatasetError, match="box file missing"):
        open_reader("synthetic-lidar", root).load("train", "00/000000")
    (root / "sequences/00/poses.txt").write_text("1 0 0\n")
    with pytest.raises(DatasetError, match="poses.txt: line 1 is not 12 numbers"):
        open_reader("synthetic-lidar", root).load("train", "00/000001")
