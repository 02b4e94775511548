"""dos.detection.metrics: equal to nuscenes-devkit 1.2.0 on the fixtures, and the protocol's behaviour.

The reference (tests/detection/fixtures/devkit_reference.json) is the devkit's own evaluation of
fixtures/gt.json and fixtures/pred.json; regenerate it (in a separate virtualenv, created if missing) with

    python scripts/detection/devkit_reference.py                 # the reference from the committed fixtures
    python scripts/detection/devkit_reference.py --new-fixtures  # the fixtures too, from the script's seed
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dos.data.boxes import DETECTION_CLASSES, Boxes, quaternion_to_yaw
from dos.detection.metrics import TP_METRICS, UNDEFINED_TP_METRICS, evaluate, filter_boxes
from dos.detection.results_format import boxes_to_results, parse_boxes
from dos.errors import DosError

FIXTURES = Path(__file__).parent / "fixtures"
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
# typical (width, length, height) per class
SIZE = {"car": (1.9, 4.6, 1.7), "truck": (2.5, 6.9, 2.8), "bus": (2.9, 10.9, 3.5), "trailer": (2.9, 12.3, 3.9),
        "construction_vehicle": (2.7, 6.4, 3.2), "pedestrian": (0.7, 0.7, 1.8), "motorcycle": (0.8, 2.1, 1.5),
        "bicycle": (0.6, 1.7, 1.3), "traffic_cone": (0.4, 0.4, 1.1), "barrier": (2.5, 0.5, 1.0)}
ATTRIBUTE = {"pedestrian": "pedestrian.moving", "motorcycle": "cycle.with_rider", "bicycle": "cycle.without_rider",
             "traffic_cone": "", "barrier": ""}


@pytest.fixture(scope="module")
def references() -> dict:
    return json.loads((FIXTURES / "devkit_reference.json").read_text())["scenarios"]


def inputs(reference: dict) -> tuple[dict, dict]:
    return (json.loads((FIXTURES / reference["gt"]).read_text()),
            json.loads((FIXTURES / reference["pred"]).read_text()))


def max_difference(ours: dict, ref: dict) -> float:
    """The largest |ours - devkit| over every AP, TP error, mean and score; NaN must meet NaN."""
    pairs = [(ours["mean_ap"], ref["mean_ap"]), (ours["nd_score"], ref["nd_score"])]
    for name in DETECTION_CLASSES:
        pairs += [(ours["label_aps"][name][th], ref["label_aps"][name][str(th)]) for th in THRESHOLDS]
        pairs += [(ours["label_tp_errors"][name][m], ref["label_tp_errors"][name][m]) for m in TP_METRICS]
        pairs.append((ours["mean_dist_aps"][name], ref["mean_dist_aps"][name]))
    pairs += [(ours[group][m], ref[group][m]) for group in ("tp_errors", "tp_scores") for m in TP_METRICS]
    worst = 0.0
    for a, b in pairs:
        assert math.isnan(a) == math.isnan(b), (a, b)
        if not math.isnan(b):
            worst = max(worst, abs(a - b))
    return worst


@pytest.mark.parametrize("scenario", ["basic", "crowds"])
def test_equals_the_devkit_on_the_fixtures(references, scenario):
    """Every number of the devkit's evaluation (regenerate: python scripts/detection/devkit_reference.py)."""
    gt, pred = inputs(references[scenario])
    ours = evaluate(gt["boxes"], pred["results"], ego_positions=gt["ego_positions"], bike_racks=gt["bike_racks"])
    assert max_difference(ours, references[scenario]) < 1e-6
    assert 0 < references[scenario]["mean_ap"] < 1


def test_the_fixtures_reach_the_protocols_corners(references):
    """A class with predictions but no GT, one with GT but no predictions, GT with 0 points."""
    gt, _ = inputs(references["basic"])
    kept = references["basic"]["kept_after_filtering"]
    assert kept["gt"]["trailer"] == 0 < kept["pred"]["trailer"] and kept["pred"]["bus"] == 0 < kept["gt"]["bus"]
    assert any(b["num_pts"] == 0 for boxes in gt["boxes"].values() for b in boxes)


@pytest.mark.parametrize("scenario", ["basic", "crowds"])
def test_filtering_keeps_the_devkits_boxes(references, scenario):
    """Range, zero-point and bike-rack filters keep as many boxes of each class as the devkit's
    filter_eval_boxes."""
    reference = references[scenario]
    gt, pred = inputs(reference)
    tokens = {token: i for i, token in enumerate(gt["boxes"])}
    for kind, results, is_pred in (("gt", gt["boxes"], False), ("pred", pred["results"], True)):
        table = parse_boxes(results, tokens, kind, is_pred)
        kept = filter_boxes(table, gt["ego_positions"], gt["bike_racks"], tokens)
        assert {name: int((kept.label == c).sum()) for c, name in enumerate(DETECTION_CLASSES)} == \
            reference["kept_after_filtering"][kind]
        assert reference["before_filtering"][f"{kind}_boxes"] == len(table)
        if scenario == "basic":
            assert len(filter_boxes(table, gt["ego_positions"], None, tokens)) > len(kept)  # racks hold boxes


def test_boxes_own_ego_translation_equals_ego_positions(references):
    """Boxes carrying ego_translation (as DetectionBox) evaluate as the devkit's add_center_dist would set it."""
    gt, pred = inputs(references["basic"])
    results = {token: [dict(box, ego_translation=(np.array(box["translation"])
                                                  - gt["ego_positions"][token]).tolist()) for box in boxes]
               for token, boxes in pred["results"].items()}
    ours = evaluate(gt["boxes"], results, bike_racks=gt["bike_racks"])
    assert max_difference(ours, references["basic"]) < 1e-6


def test_without_bike_racks_the_fixtures_differ_from_the_devkit(references):
    """The fixtures' racks hold boxes: skipping the rack filter changes the result (so the check above sees it)."""
    gt, pred = inputs(references["basic"])
    ours = evaluate(gt["boxes"], pred["results"], ego_positions=gt["ego_positions"])
    assert max_difference(ours, references["basic"]) > 1e-6


# ------------------------------------------------------------------------------------------ behaviour

def box(name: str, x: float, y: float, score: float | None = None, token: str = "s0", yaw: float = 0.0,
        velocity=(1.0, 0.5), attribute: str | None = None, num_pts: int = 20, size=None) -> dict:
    """A result dict in the ego frame (ego at the origin): GT without score, prediction with one."""
    out = {"sample_token": token, "translation": [x, y, 0.5], "size": list(size or SIZE[name]),
           "rotation": [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)], "velocity": list(velocity),
           "ego_translation": [x, y, 0.5], "detection_name": name,
           "attribute_name": ATTRIBUTE.get(name, "vehicle.moving") if attribute is None else attribute}
    if score is None:
        out["num_pts"] = num_pts
    else:
        out["detection_score"] = score
    return out


def car_ap(gt: list[dict], pred: list[dict]) -> dict[float, float]:
    return evaluate({"s0": gt}, {"s0": pred})["label_aps"]["car"]


def test_perfect_predictions_score_one():
    """Predictions equal to the GT (via boxes_to_results) of every class: AP 1, TP errors 0, NDS 1."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(DETECTION_CLASSES)), 3)
    angle = rng.uniform(-np.pi, np.pi, len(labels))
    radius = rng.uniform(3, 25, len(labels))
    boxes = Boxes(np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(len(labels))], 1),
                  np.array([SIZE[DETECTION_CLASSES[c]] for c in labels]), rng.uniform(-np.pi, np.pi, len(labels)),
                  labels, rng.normal(0, 2, (len(labels), 2)), np.full(len(labels), 30),
                  [ATTRIBUTE.get(DETECTION_CLASSES[c], "vehicle.parked") for c in labels])
    gt = {"a": boxes_to_results(boxes, "a")}
    pred = {"a": boxes_to_results(boxes, "a", scores=rng.uniform(0.1, 1, len(labels)))}
    result = evaluate(gt, pred)
    for name in DETECTION_CLASSES:
        assert result["label_aps"][name] == {th: pytest.approx(1.0) for th in THRESHOLDS}
        for metric, error in result["label_tp_errors"][name].items():
            assert math.isnan(error) == (metric in UNDEFINED_TP_METRICS.get(name, ()))
            assert math.isnan(error) or error == pytest.approx(0.0, abs=1e-9)
    assert result["mean_ap"] == pytest.approx(1.0)
    assert result["nd_score"] == pytest.approx(1.0)


def test_boxes_to_results_writes_the_boxes():
    boxes = Boxes(np.array([[10.0, -2.0, 1.0]]), np.array([[1.9, 4.6, 1.7]]), np.array([2.5]), np.array([1]),
                  np.array([[3.0, 4.0]]), np.array([7]), ["vehicle.moving"])
    gt, = boxes_to_results(boxes, "tok", ego_position=(4.0, 2.0, 0.0))
    pred, = boxes_to_results(boxes, "tok", scores=np.array([0.25]))
    assert gt["translation"] == [10.0, -2.0, 1.0] and gt["size"] == [1.9, 4.6, 1.7]
    assert gt["ego_translation"] == [6.0, -4.0, 1.0] and pred["ego_translation"] == [10.0, -2.0, 1.0]
    assert quaternion_to_yaw(np.array(gt["rotation"]))[0] == pytest.approx(2.5)
    assert gt["detection_name"] == "truck" and gt["num_pts"] == 7 and "detection_score" not in gt
    assert pred["detection_score"] == 0.25 and "num_pts" not in pred and pred["velocity"] == [3.0, 4.0]


def test_match_needs_a_centre_closer_than_the_threshold():
    """A prediction 3 m off matches only at 4 m; one 4.5 m off is a false positive everywhere; the distance must
    be below the threshold (0.5 m off, exactly, is not a match at 0.5 m)."""
    gt = [box("car", 10, 0)]
    assert car_ap(gt, [box("car", 10.5, 0, 0.9)]) == {0.5: 0.0, 1.0: pytest.approx(1.0), 2.0: pytest.approx(1.0),
                                                       4.0: pytest.approx(1.0)}
    assert car_ap(gt, [box("car", 13, 0, 0.9)]) == {0.5: 0.0, 1.0: 0.0, 2.0: 0.0, 4.0: pytest.approx(1.0)}
    assert car_ap(gt, [box("car", 10, 4.5, 0.9)]) == {th: 0.0 for th in THRESHOLDS}
    result = evaluate({"s0": gt}, {"s0": [box("car", 10, 4.5, 0.9)]})
    assert all(result["label_tp_errors"]["car"][m] == 1.0 for m in TP_METRICS)


def test_tp_errors_measure_the_matched_box():
    """ATE = centre distance, ASE = 1 - aligned IoU, AOE = yaw difference (barrier: modulo π), AAE, AVE."""
    result = evaluate({"s0": [box("car", 10, 0, velocity=(1, 0)), box("barrier", 0, 8)]},
                      {"s0": [box("car", 10.3, 0.4, 0.8, yaw=0.5, velocity=(4, 4), attribute="vehicle.parked",
                                  size=(1.9, 4.6, 3.4)),
                              box("barrier", 0, 8, 0.7, yaw=math.pi + 0.2)]})
    car = result["label_tp_errors"]["car"]
    assert car["trans_err"] == pytest.approx(0.5)
    assert car["scale_err"] == pytest.approx(0.5)  # twice the height: IoU 1/2
    assert car["orient_err"] == pytest.approx(0.5)
    assert car["vel_err"] == pytest.approx(5.0)
    assert car["attr_err"] == pytest.approx(1.0)
    assert result["label_tp_errors"]["barrier"]["orient_err"] == pytest.approx(0.2)


def test_class_range_filters_gt_and_predictions():
    """A car GT at 55 m (range 50) is not a miss, and a car prediction at 57 m is not a false positive while
    one at 42 m is; a pedestrian at 45 m is beyond its 40 m range, measured from the ego, not the origin."""
    near = box("car", 20, 0)
    assert car_ap([near, box("car", 0, 55)], [box("car", 20, 0, 0.5)]) == {th: pytest.approx(1.0) for th in THRESHOLDS}
    assert car_ap([near, box("car", 0, 45)], [box("car", 20, 0, 0.5)])[2.0] < 0.5
    assert car_ap([near], [box("car", 20, 0, 0.5), box("car", 40, 40, 0.9)])[2.0] == pytest.approx(1.0)
    assert car_ap([near], [box("car", 20, 0, 0.5), box("car", 30, 30, 0.9)])[2.0] < 0.5
    ped_gt = {"s0": [box("pedestrian", 5, 0), box("pedestrian", 45, 0)]}
    ped_pred = {"s0": [box("pedestrian", 5, 0, 0.5)]}
    assert evaluate(ped_gt, ped_pred)["label_aps"]["pedestrian"][2.0] == pytest.approx(1.0)
    shifted = evaluate(ped_gt, ped_pred, ego_positions={"s0": (25.0, 0.0, 0.0)})  # both boxes within 20 m
    assert shifted["label_aps"]["pedestrian"][2.0] < 0.5


def test_zero_point_gt_is_dropped():
    """A GT with num_pts 0 is neither a miss nor a match; with 1 point, missing it halves the recall."""
    found = box("car", 10, 0, 0.9)
    assert car_ap([box("car", 10, 0), box("car", 0, 15, num_pts=0)], [found])[2.0] == pytest.approx(1.0)
    assert car_ap([box("car", 10, 0), box("car", 0, 15, num_pts=1)], [found])[2.0] < 0.6


def test_score_order_decides_the_ranking():
    """A false positive scored above the true positive costs precision at every recall; scored below, only at
    the max recall (np.interp takes the last precision of a repeated recall, as in the devkit)."""
    gt = [box("car", 10, 0)]
    assert car_ap(gt, [box("car", 10, 0, 0.9), box("car", -20, 0, 0.3)])[2.0] == pytest.approx(1 - (1 - 0.4 / 0.9) / 90)
    assert car_ap(gt, [box("car", 10, 0, 0.3), box("car", -20, 0, 0.9)])[2.0] < 0.5


def test_greedy_matching_by_score_then_distance():
    """The higher-scored prediction takes its nearest GT even when a lower-scored one is closer to it; on equal
    scores the later prediction goes first (the devkit's sort)."""
    gt = [box("car", 10, 0)]
    close, off = box("car", 10.1, 0, 0.5), box("car", 11.5, 0, 0.9)
    assert evaluate({"s0": gt}, {"s0": [close, off]})["label_tp_errors"]["car"]["trans_err"] == pytest.approx(1.5)
    tie_close, tie_off = dict(close, detection_score=0.7), dict(off, detection_score=0.7)
    ate = [evaluate({"s0": gt}, {"s0": order})["label_tp_errors"]["car"]["trans_err"]
           for order in ([tie_close, tie_off], [tie_off, tie_close])]
    assert ate == [pytest.approx(1.5), pytest.approx(0.1)]
    # the second prediction finds its nearest GT taken and takes the next nearest, 0.8 m away
    two = [box("car", 10, 0), box("car", 11, 0)]
    aps = car_ap(two, [box("car", 10.1, 0, 0.9), box("car", 10.2, 0, 0.8)])
    assert aps[1.0] == pytest.approx(1.0) and aps[0.5] < 0.5  # 0.8 m: a false positive at 0.5 m


def test_bike_rack_filter():
    """Bicycles (GT and predictions) whose centre lies in a rack, in the rack's own rotated frame, are dropped;
    cars in it are not."""
    gt = {"s0": [box("bicycle", 10, 0), box("bicycle", 0, 10), box("car", 0, 10)]}
    pred = {"s0": [box("bicycle", 10, 0, 0.5), box("car", 0, 10, 0.5)]}
    # 3 m long, 1 m wide, its centre 0.8 m from the parked bicycle along y
    along_y = [math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]
    rack = {"translation": [0.0, 10.8, 0.5], "size": [1.0, 3.0, 1.0], "rotation": along_y}
    with_rack = evaluate(gt, pred, bike_racks={"s0": [rack]})
    assert with_rack["label_aps"]["bicycle"][2.0] == pytest.approx(1.0)
    assert with_rack["label_aps"]["car"][2.0] == pytest.approx(1.0)
    assert evaluate(gt, pred)["label_aps"]["bicycle"][2.0] < 0.6
    along_x = dict(rack, rotation=[1.0, 0.0, 0.0, 0.0])  # now 0.8 m off along its 1 m width: outside
    assert evaluate(gt, pred, bike_racks={"s0": [along_x]})["label_aps"]["bicycle"][2.0] < 0.6


def test_input_errors_name_the_source():
    gt = {"s0": [box("car", 10, 0)]}
    with pytest.raises(DosError, match="preds.json: the samples differ"):
        evaluate(gt, {"s1": []}, pred_source="preds.json")
    with pytest.raises(DosError, match="at most 500"):
        evaluate(gt, {"s0": [box("car", i, 0, 0.5) for i in range(501)]})
    with pytest.raises(DosError, match="preds.json: sample 's0' box 0: detection_name 'van'"):
        evaluate(gt, {"s0": [dict(box("car", 10, 0, 0.5), detection_name="van")]}, pred_source="preds.json")
    with pytest.raises(DosError, match="detection_score"):
        evaluate(gt, {"s0": [box("car", 10, 0)]})
    no_ego = {k: v for k, v in box("car", 10, 0, 0.5).items() if k != "ego_translation"}
    with pytest.raises(DosError, match="preds.json: sample 's0' box 1 has no 'ego_translation'"):
        evaluate(gt, {"s0": [box("car", 10, 0, 0.5), no_ego]}, pred_source="preds.json")
    assert evaluate(gt, {"s0": [no_ego]}, ego_positions={"s0": [0, 0, 0]})["label_aps"]["car"][2.0] == \
        pytest.approx(1.0)


@pytest.mark.parametrize("change, message", [
    ({"size": [1.9, 0.0, 1.7]}, "box 1: every size .* must be > 0"),
    ({"translation": [1.0, 2.0]}, "box 1: 'translation' must be a list of 3 numbers"),
    ({"rotation": [1.0, 0.0, 0.0, math.nan]}, "box 1: 'rotation' must be a list of 4 numbers .no NaN."),
    ({"attribute_name": "vehicle.flying"}, "box 1: attribute_name 'vehicle.flying'"),
    ({"num_pts": 3.5}, "box 1: num_pts must be an integer"),
    ({"detection_score": "high"}, "box 1: detection_score must be a number"),
])
def test_a_bad_box_is_named_by_file_sample_and_index(change, message):
    gt = {"s0": [box("car", 10, 0)], "s1": [box("car", 10, 0, token="s1")]}
    pred = {"s0": [box("car", 10, 0, 0.5)],
            "s1": [box("car", 10, 0, 0.5, token="s1"), dict(box("car", 12, 0, 0.4, token="s1"), **change)]}
    with pytest.raises(DosError, match=f"preds.json: sample 's1' {message}"):
        evaluate(gt, pred, pred_source="preds.json")
