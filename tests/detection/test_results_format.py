import json

import numpy as np
import pytest

from dos.data.boxes import DETECTION_CLASSES, Boxes, quaternion_to_yaw
from dos.detection.results_format import boxes_to_results, default_attribute


def test_results_round_trip_yaw_and_carry_every_field():
    yaws = np.array([0.0, 1.2, -2.5, 3.1])
    boxes = Boxes(np.arange(12.0).reshape(4, 3), np.array([[2.0, 4.5, 1.6]] * 4), yaws, np.array([0, 5, 8, 9]),
                  np.array([[3.0, 0.0], [np.nan, np.nan], [0.0, 0.0], [0.0, 0.0]]))
    boxes.attribute = [default_attribute(n, v) for n, v in zip(boxes.names(), boxes.velocity)]
    results = boxes_to_results(boxes, "token-1", np.array([0.9, 0.8, 0.7, 0.6]))
    assert json.loads(json.dumps(results))[1]["velocity"] != [0.0, 0.0]  # NaN stays unknown (Python's JSON)
    assert [r["detection_name"] for r in results] == ["car", "pedestrian", "traffic_cone", "barrier"]
    assert [r["attribute_name"] for r in results] == ["vehicle.moving", "pedestrian.standing", "", ""]
    assert results[0]["translation"] == [0.0, 1.0, 2.0] and results[0]["size"] == [2.0, 4.5, 1.6]
    assert results[2]["detection_score"] == pytest.approx(0.7)
    assert {r["sample_token"] for r in results} == {"token-1"}
    rotation = np.array([r["rotation"] for r in results])
    np.testing.assert_allclose(np.linalg.norm(rotation, axis=1), 1.0)
    np.testing.assert_allclose(quaternion_to_yaw(rotation), yaws, atol=1e-12)


def test_a_box_attribute_is_kept():
    boxes = Boxes(np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), np.array([0]), attribute=["vehicle.stopped"])
    assert boxes_to_results(boxes, "t", np.array([0.5]))[0]["attribute_name"] == "vehicle.stopped"


@pytest.mark.parametrize("name, moving, still", [
    ("car", "vehicle.moving", "vehicle.parked"), ("truck", "vehicle.moving", "vehicle.parked"),
    ("bus", "vehicle.moving", "vehicle.stopped"), ("trailer", "vehicle.moving", "vehicle.parked"),
    ("construction_vehicle", "vehicle.moving", "vehicle.parked"),
    ("pedestrian", "pedestrian.moving", "pedestrian.standing"),
    ("motorcycle", "cycle.with_rider", "cycle.without_rider"), ("bicycle", "cycle.with_rider", "cycle.without_rider"),
    ("traffic_cone", "", ""), ("barrier", "", "")])
def test_default_attribute_by_speed(name, moving, still):
    assert name in DETECTION_CLASSES
    assert default_attribute(name, np.array([0.3, 0.0])) == moving
    assert default_attribute(name, np.array([0.1, 0.1])) == still
    assert default_attribute(name, np.array([np.nan, np.nan])) == still
