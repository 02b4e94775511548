#!/usr/bin/env python
"""nuscenes-devkit's own detection evaluation of the test fixtures: the reference dos.detection.metrics must equal.

    python scripts/detection/devkit_reference.py [--new-fixtures] [--venv /tmp/dos-devkit-venv]

Run with any python: it creates (if missing) a separate virtualenv with nuscenes-devkit==1.2.0 (`python3.11 -m
venv`, then pip; the devkit pins numpy<2, which must not enter the project's .venv) and re-runs itself there.
Then it writes the fixtures when they are missing or with --new-fixtures (a seeded generator, below), and
evaluates them with the devkit's code: `load_prediction`, `add_center_dist` and `filter_eval_boxes` (range,
zero points and bike racks) of `nuscenes.eval.common.loaders`, then `DetectionEval.evaluate` (accumulate,
calc_ap, calc_tp, DetectionMetrics) with `config_factory('detection_cvpr_2019')`. Those loaders only read the
dataset through `nusc.get(table, token)` (the sample's annotations, for bike racks, and its LiDAR ego pose),
so a small stand-in answers from the fixtures' ego positions and racks; no nuScenes download is needed.

Two scenarios: "basic" (every edge case of the protocol) and "crowds" (predictions competing for GT).
Writes tests/detection/fixtures/{gt,pred}[_crowds].json (when generating) and devkit_reference.json (always).
Nothing of the devkit is copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "detection" / "fixtures"
DEVKIT = "nuscenes-devkit==1.2.0"
SEED = 20190601

CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
           "traffic_cone", "barrier")
# mean (width, length, height) in metres, about nuScenes' per-class means
SIZES = {"car": (1.95, 4.62, 1.73), "truck": (2.51, 6.93, 2.84), "bus": (2.94, 10.9, 3.47),
         "trailer": (2.9, 12.3, 3.87), "construction_vehicle": (2.73, 6.37, 3.19), "pedestrian": (0.67, 0.73, 1.77),
         "motorcycle": (0.77, 2.11, 1.47), "bicycle": (0.61, 1.7, 1.29), "traffic_cone": (0.41, 0.41, 1.07),
         "barrier": (2.53, 0.5, 0.98)}
ATTRIBUTES = {"pedestrian": ("pedestrian.moving", "pedestrian.standing", "pedestrian.sitting_lying_down"),
              "motorcycle": ("cycle.with_rider", "cycle.without_rider"),
              "bicycle": ("cycle.with_rider", "cycle.without_rider"),
              "traffic_cone": ("",), "barrier": ("",)}
VEHICLE_ATTRIBUTES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped")


# ------------------------------------------------------------------------------------------- the fixtures

def _quaternion(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def make_fixtures(seed: int = SEED) -> tuple[dict, dict]:
    """GT (boxes, ego positions, bike racks) and predictions of 20 samples, in the global frame.

    Edge cases: 'trailer' has no GT (only false positives), 'bus' has GT but no predictions,
    construction_vehicle GT has no velocities (all NaN), some GT lie beyond their class range or have 0 points,
    some GT have no attribute; predictions are perfect, slightly off, far off (> 4 m), of the wrong class,
    duplicated, or pure false positives; scores have 3 decimals (ties occur); bikes in racks in 3 samples; one
    sample has no GT, one has neither GT nor predictions; the predictions' sample order is shuffled.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = [f"sample_{i:02d}" for i in range(20)]
    gt_boxes, pred_boxes, ego_positions, racks = {}, {}, {}, {}

    def attribute(name: str) -> str:
        options = ATTRIBUTES.get(name, VEHICLE_ATTRIBUTES)
        return str(options[rng.integers(len(options))])

    def score() -> float:
        return float(np.round(rng.uniform(0.05, 1.0), 3))

    for s, token in enumerate(tokens):
        ego = np.array([rng.uniform(300, 1800), rng.uniform(800, 1700), 0.0])
        ego_positions[token] = ego.tolist()
        gts, preds = [], []
        n_per_class = {name: (0 if name == "trailer" or s == 7 or s == 13 else int(rng.integers(0, 4)))
                       for name in CLASSES}
        for name in CLASSES:
            for _ in range(n_per_class[name]):
                radius, angle = rng.uniform(2, 58), rng.uniform(-math.pi, math.pi)
                centre = ego + [radius * math.cos(angle), radius * math.sin(angle), rng.uniform(-0.5, 1.5)]
                size = np.array(SIZES[name]) * rng.uniform(0.85, 1.15, 3)
                yaw = rng.uniform(-math.pi, math.pi)
                attr = attribute(name)
                if name in ("traffic_cone", "barrier") or attr in ("vehicle.parked", "pedestrian.standing"):
                    velocity = [0.0, 0.0]
                else:
                    velocity = rng.normal(0, 3 if name != "pedestrian" else 1, 2).tolist()
                if name == "construction_vehicle" or rng.uniform() < 0.05:
                    velocity = [math.nan, math.nan]
                if rng.uniform() < 0.05 and name not in ("traffic_cone", "barrier"):
                    attr = ""  # an annotation missing its attribute
                num_pts = 0 if rng.uniform() < 0.1 else int(rng.integers(1, 400))
                box = {"sample_token": token, "translation": centre.tolist(), "size": size.tolist(),
                       "rotation": _quaternion(yaw), "velocity": velocity,
                       "ego_translation": (centre - ego).tolist(), "num_pts": num_pts,
                       "detection_name": name, "attribute_name": attr}
                gts.append(box)
                if name == "bus":
                    continue  # a class without predictions
                kind = rng.choice(["perfect", "close", "off", "far", "missed"], p=[0.2, 0.35, 0.2, 0.1, 0.15])
                if kind == "missed":
                    continue
                shift = {"perfect": 0.0, "close": rng.uniform(0.05, 0.45), "off": rng.uniform(0.5, 3.9),
                         "far": rng.uniform(4.2, 8.0)}[kind]
                direction = rng.uniform(-math.pi, math.pi)
                p_centre = centre + [shift * math.cos(direction), shift * math.sin(direction), rng.normal(0, 0.1)]
                noisy = kind != "perfect"
                p_size = size * (rng.uniform(0.8, 1.2, 3) if noisy else 1.0)
                p_yaw = yaw + (rng.normal(0, 0.4) if noisy else 0.0) + (math.pi if rng.uniform() < 0.1 else 0.0)
                p_velocity = (np.nan_to_num(np.array(velocity)) + (rng.normal(0, 1, 2) if noisy else 0.0)).tolist()
                if rng.uniform() < 0.05:
                    p_velocity = [math.nan, math.nan]
                p_attr = attribute(name) if noisy and rng.uniform() < 0.3 else (attr or attribute(name))
                pred = {"sample_token": token, "translation": p_centre.tolist(), "size": p_size.tolist(),
                        "rotation": _quaternion(p_yaw), "velocity": p_velocity, "detection_name": name,
                        "detection_score": score(), "attribute_name": p_attr}
                preds.append(pred)
                if rng.uniform() < 0.15:  # a duplicate close to the first
                    preds.append(dict(pred, translation=(p_centre + [0.1, -0.1, 0.0]).tolist(),
                                      detection_score=score()))
                if rng.uniform() < 0.1:  # the same box under another class
                    other = str(CLASSES[rng.integers(len(CLASSES))])
                    if other not in (name, "bus"):
                        preds.append(dict(pred, detection_name=other, detection_score=score(),
                                          attribute_name=attribute(other)))
        for _ in range(int(rng.integers(0, 6)) if s != 13 else 0):  # false positives, trailers among them
            name = str(CLASSES[rng.integers(len(CLASSES))]) if rng.uniform() < 0.7 else "trailer"
            if name == "bus":
                continue
            radius, angle = rng.uniform(1, 55), rng.uniform(-math.pi, math.pi)
            centre = ego + [radius * math.cos(angle), radius * math.sin(angle), 0.5]
            preds.append({"sample_token": token, "translation": centre.tolist(),
                          "size": (np.array(SIZES[name]) * rng.uniform(0.8, 1.2, 3)).tolist(),
                          "rotation": _quaternion(rng.uniform(-math.pi, math.pi)),
                          "velocity": rng.normal(0, 2, 2).tolist(), "detection_name": name,
                          "detection_score": score(), "attribute_name": attribute(name)})
        if s in (3, 9, 16):  # a bike rack around the first bicycle GT (or an empty spot) and a motorcycle in it
            bikes = [b for b in gts if b["detection_name"] == "bicycle"]
            spot = np.array(bikes[0]["translation"]) if bikes else ego + [6.0, 4.0, 0.0]
            yaw = rng.uniform(-math.pi, math.pi)
            racks[token] = [{"translation": spot.tolist(), "size": [2.0, 6.0, 1.5], "rotation": _quaternion(yaw)}]
            inside = spot + [1.5 * math.cos(yaw), 1.5 * math.sin(yaw), 0.2]
            preds.append({"sample_token": token, "translation": inside.tolist(), "size": list(SIZES["motorcycle"]),
                          "rotation": _quaternion(yaw), "velocity": [0.0, 0.0], "detection_name": "motorcycle",
                          "detection_score": score(), "attribute_name": "cycle.without_rider"})
        gt_boxes[token] = gts
        pred_boxes[token] = preds
    order = [tokens[i] for i in rng.permutation(len(tokens))]
    gt = {"ego_positions": ego_positions, "bike_racks": racks, "boxes": gt_boxes}
    pred = {"meta": {"use_lidar": True, "use_camera": False, "use_radar": False, "use_map": False,
                     "use_external": False},
            "results": {token: pred_boxes[token] for token in order}}
    return gt, pred


def make_dense_fixtures(seed: int = SEED + 1) -> tuple[dict, dict]:
    """Crowds: clusters of pedestrians, cones, barriers, bicycles and cars a few metres across, each GT with 0-2
    noisy predictions plus strays, so that predictions compete for GT and often take a GT that is not their
    nearest (the nearest being taken)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = [f"crowd_{i:02d}" for i in range(12)]
    gt_boxes, pred_boxes, ego_positions = {}, {}, {}
    for token in tokens:
        ego = np.array([rng.uniform(300, 1800), rng.uniform(800, 1700), 0.0])
        ego_positions[token] = ego.tolist()
        gts, preds = [], []
        for _ in range(3):
            name = str(rng.choice(["pedestrian", "traffic_cone", "barrier", "bicycle", "car"]))
            spread = 10.0 if name == "car" else 4.0
            middle = ego + [rng.uniform(-25, 25), rng.uniform(-25, 25), 0.0]
            options = ATTRIBUTES.get(name, VEHICLE_ATTRIBUTES)
            for _ in range(int(rng.integers(3, 9))):
                centre = middle + [rng.uniform(0, spread), rng.uniform(0, spread), rng.uniform(-0.2, 0.2)]
                size = np.array(SIZES[name]) * rng.uniform(0.85, 1.15, 3)
                yaw = rng.uniform(-math.pi, math.pi)
                velocity = rng.normal(0, 1, 2).tolist()
                gts.append({"sample_token": token, "translation": centre.tolist(), "size": size.tolist(),
                            "rotation": _quaternion(yaw), "velocity": velocity,
                            "ego_translation": (centre - ego).tolist(), "num_pts": int(rng.integers(1, 100)),
                            "detection_name": name, "attribute_name": str(options[rng.integers(len(options))])})
                for _ in range(int(rng.integers(0, 3))):
                    preds.append({"sample_token": token,
                                  "translation": (centre + [*rng.normal(0, 0.8, 2), 0.0]).tolist(),
                                  "size": (size * rng.uniform(0.8, 1.2, 3)).tolist(),
                                  "rotation": _quaternion(yaw + rng.normal(0, 0.5)),
                                  "velocity": (np.array(velocity) + rng.normal(0, 0.5, 2)).tolist(),
                                  "detection_name": name, "detection_score": float(np.round(rng.uniform(), 3)),
                                  "attribute_name": str(options[rng.integers(len(options))])})
        gt_boxes[token], pred_boxes[token] = gts, preds
    gt = {"ego_positions": ego_positions, "bike_racks": {}, "boxes": gt_boxes}
    pred = {"meta": {"use_lidar": True, "use_camera": False, "use_radar": False, "use_map": False,
                     "use_external": False}, "results": pred_boxes}
    return gt, pred


SCENARIOS = {"basic": ("gt.json", "pred.json", make_fixtures),
             "crowds": ("gt_crowds.json", "pred_crowds.json", make_dense_fixtures)}


# ------------------------------------------------------------------------------ the devkit's evaluation

class StandIn:
    """What the devkit's loaders read of a NuScenes object: `get(table, token)` for samples (their
    annotations: the bike racks), their LiDAR sample_data and its ego pose."""

    def __init__(self, ego_positions: dict, bike_racks: dict):
        self.tables: dict[str, dict] = {"sample": {}, "sample_data": {}, "ego_pose": {}, "sample_annotation": {}}
        for token, position in ego_positions.items():
            anns = []
            for i, rack in enumerate(bike_racks.get(token, [])):
                ann = f"{token}_rack_{i}"
                self.tables["sample_annotation"][ann] = dict(rack, token=ann,
                                                            category_name="static_object.bicycle_rack")
                anns.append(ann)
            self.tables["sample"][token] = {"token": token, "anns": anns, "data": {"LIDAR_TOP": f"{token}_lidar"}}
            self.tables["sample_data"][f"{token}_lidar"] = {"ego_pose_token": f"{token}_pose"}
            self.tables["ego_pose"][f"{token}_pose"] = {"translation": position, "rotation": [1.0, 0, 0, 0]}

    def get(self, table: str, token: str) -> dict:
        return self.tables[table][token]


def devkit_reference(gt_path: Path, pred_path: Path) -> dict:
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_prediction
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.eval.detection.evaluate import DetectionEval

    cfg = config_factory("detection_cvpr_2019")
    gt = json.loads(gt_path.read_text())
    nusc = StandIn(gt["ego_positions"], gt["bike_racks"])
    pred_boxes, _ = load_prediction(str(pred_path), cfg.max_boxes_per_sample, DetectionBox)
    gt_boxes = EvalBoxes.deserialize(gt["boxes"], DetectionBox)
    counts = {"gt_boxes": len(gt_boxes.all), "pred_boxes": len(pred_boxes.all)}
    pred_boxes = filter_eval_boxes(nusc, add_center_dist(nusc, pred_boxes), cfg.class_range)
    gt_boxes = filter_eval_boxes(nusc, add_center_dist(nusc, gt_boxes), cfg.class_range)

    evaluation = DetectionEval.__new__(DetectionEval)  # skips __init__, which loads a nuScenes split
    evaluation.cfg, evaluation.verbose = cfg, False
    evaluation.gt_boxes, evaluation.pred_boxes = gt_boxes, pred_boxes
    metrics, _ = evaluation.evaluate()
    summary = metrics.serialize()
    summary.pop("eval_time")
    summary["label_aps"] = {name: {str(th): ap for th, ap in aps.items()} for name, aps in summary["label_aps"].items()}
    summary["label_tp_errors"] = {name: dict(e) for name, e in summary["label_tp_errors"].items()}
    summary["kept_after_filtering"] = {
        kind: {name: sum(b.detection_name == name for b in boxes.all) for name in CLASSES}
        for kind, boxes in (("gt", gt_boxes), ("pred", pred_boxes))}
    summary["before_filtering"] = counts
    return summary


# ------------------------------------------------------------------------------------------------ driver

def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {DEVKIT}", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DEVKIT], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-fixtures", action="store_true", help="rewrite gt.json and pred.json from the seed")
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("DOS_DEVKIT_VENV", "/tmp/dos-devkit-venv")))
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != args.venv.resolve():
        python = ensure_venv(args.venv)
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])

    reference = {"devkit": DEVKIT, "scenarios": {}}
    for scenario, (gt_name, pred_name, make) in SCENARIOS.items():
        gt_path, pred_path = FIXTURES / gt_name, FIXTURES / pred_name
        if args.new_fixtures or not (gt_path.exists() and pred_path.exists()):
            gt, pred = make()
            FIXTURES.mkdir(parents=True, exist_ok=True)
            gt_path.write_text(json.dumps(gt, indent=1) + "\n")
            pred_path.write_text(json.dumps(pred, indent=1) + "\n")
            print(f"wrote {gt_path} and {pred_path}")
        summary = devkit_reference(gt_path, pred_path)
        reference["scenarios"][scenario] = dict(summary, gt=gt_name, pred=pred_name)
        print(f"{scenario}: mAP {summary['mean_ap']:.6f}, NDS {summary['nd_score']:.6f}")
    out = FIXTURES / "devkit_reference.json"
    out.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
