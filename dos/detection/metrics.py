"""nuScenes detection metrics (the devkit's `detection_cvpr_2019` evaluation): AP, TP errors, mAP and NDS.

The protocol, as nuscenes-devkit 1.2.0 computes it (tests/detection checks every number against it to 1e-6):
- Filtering, of ground truth and predictions alike: a box is kept when its xy distance from the ego
  (`ego_translation`) is below its class range, it does not have `num_pts == 0` (predictions have -1), and,
  for bicycle and motorcycle, its centre is not inside a `static_object.bicycle_rack` box of its sample. The
  rack filter runs when `bike_racks` are given; without them (our synthetic data has no racks) it is not
  applied, which on real nuScenes would keep the few bikes parked in racks that the devkit drops.
- Matching, per class and distance threshold (0.5, 1, 2, 4 m): predictions in descending score order (ties:
  the later box in input order first, as the devkit's sort) each take the nearest (xy centre distance; ties:
  the first GT in input order) not yet taken GT of their class and sample, when that distance is < threshold;
  else they are false positives.
- Precision and confidence are interpolated (`np.interp`, 0 beyond the max recall) at 101 recall points;
  AP = mean over recalls > 0.1 of max(precision - 0.1, 0) / 0.9. A class without GT, or without any match,
  gets AP 0 and TP errors 1 (the devkit's "no predictions").
- TP errors at the 2 m threshold: the running (NaN-ignoring) mean of each match's error, interpolated by
  confidence onto the recall points and averaged from recall 0.11 to the max recall (1 when that is < 0.11).
  ATE = centre distance, ASE = 1 - IoU of the boxes aligned in centre and yaw, AOE = |yaw difference| with
  period 2π (barrier: π), AVE = velocity L2 (NaN velocities ignored), AAE = 1 - attribute accuracy (GT without
  attribute ignored). traffic_cone has no AOE/AVE/AAE and barrier no AVE/AAE: NaN, left out of the class mean.
- mAP = mean over classes of the mean over thresholds; NDS = (5 mAP + Σ_TP max(0, 1 - mean TP error)) / 10.

Only the matching is a Python loop (over predictions that have a GT of their class within 4 m); the rest is
numpy, so a nuScenes val set evaluates in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dos.data.boxes import DETECTION_CLASSES, quaternion_to_yaw
from dos.detection.results_format import BoxTable, ResultBoxes, parse_boxes
from dos.errors import DosError

TP_METRICS: tuple[str, ...] = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
# The TP errors a class does not have (its boxes have no heading / no motion / no attributes).
UNDEFINED_TP_METRICS: dict[str, tuple[str, ...]] = {"traffic_cone": ("attr_err", "vel_err", "orient_err"),
                                                    "barrier": ("attr_err", "vel_err")}
N_RECALL = 101


@dataclass(frozen=True)
class DetectionConfig:
    """The devkit's `detection_cvpr_2019` configuration (the nuScenes detection challenge's)."""
    class_range: Mapping[str, float] = field(default_factory=lambda: {
        "car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50, "pedestrian": 40,
        "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30})
    dist_ths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    dist_th_tp: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    max_boxes_per_sample: int = 500
    mean_ap_weight: float = 5.0


def evaluate(gt: ResultBoxes, pred: ResultBoxes, ego_positions: Mapping[str, Sequence[float]] | None = None,
             bike_racks: ResultBoxes | None = None, config: DetectionConfig = DetectionConfig(),
             gt_source: str = "ground truth", pred_source: str = "predictions") -> dict:
    """nuScenes detection metrics of `pred` against `gt` (both: sample token -> box dicts, see results_format).

    Every GT sample must have a (possibly empty) prediction list and vice versa. `ego_positions` (token ->
    ego xyz, in the boxes' frame) sets every box's `ego_translation` as the devkit's `add_center_dist` does;
    without it each box must carry `ego_translation`. `bike_racks` (token -> boxes with translation, size,
    rotation) enables the bike-rack filter. Returns the devkit's summary names: label_aps (class -> threshold
    -> AP), mean_dist_aps, mean_ap, label_tp_errors (class -> metric -> error), tp_errors, tp_scores, nd_score.
    """
    if set(gt) != set(pred):
        missing, extra = sorted(set(gt) - set(pred)), sorted(set(pred) - set(gt))
        raise DosError(f"{pred_source}: the samples differ from the {gt_source}'s: "
                       f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})")
    for token, boxes in pred.items():
        if len(boxes) > config.max_boxes_per_sample:
            raise DosError(f"{pred_source}: sample '{token}' has {len(boxes)} boxes; at most "
                           f"{config.max_boxes_per_sample} per sample are allowed")
    token_index = {token: i for i, token in enumerate(gt)}
    gt_table = filter_boxes(parse_boxes(gt, token_index, gt_source, predictions=False), ego_positions,
                            bike_racks, token_index, config, gt_source)
    pred_table = filter_boxes(parse_boxes(pred, token_index, pred_source, predictions=True), ego_positions,
                              bike_racks, token_index, config, pred_source)

    label_aps: dict[str, dict[float, float]] = {}
    label_tp_errors: dict[str, dict[str, float]] = {}
    for c, name in enumerate(DETECTION_CLASSES):
        curves = _class_curves(gt_table.select(gt_table.label == c), pred_table.select(pred_table.label == c),
                               name, config)
        label_aps[name] = {th: _average_precision(curves[th]["precision"], config) for th in config.dist_ths}
        label_tp_errors[name] = {
            m: (float("nan") if m in UNDEFINED_TP_METRICS.get(name, ())
                else _tp_error(curves[config.dist_th_tp], m, config)) for m in TP_METRICS}
    return summarise(label_aps, label_tp_errors, config)


def summarise(label_aps: Mapping[str, Mapping[float, float]], label_tp_errors: Mapping[str, Mapping[str, float]],
              config: DetectionConfig = DetectionConfig()) -> dict:
    """mAP, mean TP errors, TP scores and NDS from the per-class numbers (the devkit's DetectionMetrics)."""
    mean_dist_aps = {name: float(np.mean(list(aps.values()))) for name, aps in label_aps.items()}
    mean_ap = float(np.mean(list(mean_dist_aps.values())))
    tp_errors = {m: float(np.nanmean([label_tp_errors[name][m] for name in label_tp_errors])) for m in TP_METRICS}
    tp_scores = {m: max(0.0, 1.0 - tp_errors[m]) for m in TP_METRICS}
    nd_score = (config.mean_ap_weight * mean_ap + sum(tp_scores.values())) / (config.mean_ap_weight + len(TP_METRICS))
    return {"label_aps": {k: dict(v) for k, v in label_aps.items()}, "mean_dist_aps": mean_dist_aps,
            "mean_ap": mean_ap, "label_tp_errors": {k: dict(v) for k, v in label_tp_errors.items()},
            "tp_errors": tp_errors, "tp_scores": tp_scores, "nd_score": float(nd_score)}


# ---------------------------------------------------------------------------------------------- filtering

def filter_boxes(table: BoxTable, ego_positions: Mapping[str, Sequence[float]] | None,
                 bike_racks: ResultBoxes | None, token_index: Mapping[str, int],
                 config: DetectionConfig = DetectionConfig(), source: str = "boxes") -> BoxTable:
    """The boxes the devkit's `filter_eval_boxes` keeps: within class range, not 0 points, not in a bike rack.
    `ego_positions` and `bike_racks` as in `evaluate`; `token_index` maps sample tokens to `table.sample`."""
    if ego_positions is not None:
        missing = [t for t in token_index if t not in ego_positions]
        if missing:
            raise DosError(f"ego positions: no position for sample(s) {missing[:3]}")
        position = np.array([list(ego_positions[t]) for t in token_index], dtype=np.float64).reshape(-1, 3)
        table = BoxTable(**{**vars(table), "ego_translation": table.translation - position[table.sample]})
    elif np.isnan(table.ego_translation).any():
        first = int(np.isnan(table.ego_translation).any(axis=1).argmax())
        token = list(token_index)[table.sample[first]]
        index = first - int(np.argmax(table.sample == table.sample[first]))
        raise DosError(f"{source}: sample '{token}' box {index} has no 'ego_translation'; give every box one, "
                       "or pass the samples' ego positions")
    max_dist = np.array([config.class_range[name] for name in DETECTION_CLASSES], dtype=np.float64)
    ego_dist = np.sqrt(np.sum(table.ego_translation[:, :2] ** 2, axis=1))
    keep = (ego_dist < max_dist[table.label]) & (table.num_pts != 0)
    if bike_racks is not None:
        cycles = np.isin(table.label, [DETECTION_CLASSES.index("bicycle"), DETECTION_CLASSES.index("motorcycle")])
        keep &= ~(cycles & _in_any_box(table.translation, table.sample, bike_racks, token_index))
    return table.select(keep)


def _rotation_matrix(q: np.ndarray) -> np.ndarray:
    """[M, 4] quaternions (w, x, y, z; normalised here, as pyquaternion does) -> [M, 3, 3] rotation matrices."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)


def _in_any_box(points: np.ndarray, sample: np.ndarray, boxes: ResultBoxes,
                token_index: Mapping[str, int]) -> np.ndarray:
    """[N] whether each point lies in (or on) one of its sample's boxes (the devkit's `points_in_box`)."""
    inside = np.zeros(len(points), dtype=bool)
    for token, racks in boxes.items():
        if token not in token_index or not racks:
            continue
        here = np.flatnonzero(sample == token_index[token])
        try:
            centre = np.array([r["translation"] for r in racks], dtype=np.float64).reshape(-1, 3)
            wlh = np.array([r["size"] for r in racks], dtype=np.float64).reshape(-1, 3)
            rotation = _rotation_matrix(np.array([r["rotation"] for r in racks], dtype=np.float64).reshape(-1, 4))
        except (KeyError, TypeError, ValueError) as e:
            raise DosError(f"bike racks: sample '{token}': each rack needs translation [3], size [3] and "
                           f"rotation [4] ({e})") from e
        # the point in each rack's frame: R^T (p - t); x runs along the length, y the width, z the height
        local = np.einsum("rji,prj->pri", rotation, points[here, None, :] - centre[None])
        half = wlh[:, [1, 0, 2]] / 2
        inside[here] = np.all(np.abs(local) <= half[None], axis=2).any(axis=1)
    return inside


# ------------------------------------------------------------------------------------ matching and curves

def _center_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a[..., :2] - b[..., :2]
    return np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])


def _candidates(gt: BoxTable, pred: BoxTable, max_dist: float) -> tuple[list[int], list[int], list[float]]:
    """For each prediction (in `pred`'s order), the GT of its sample within `max_dist`, nearest first (ties:
    first GT first), as CSR lists: prediction k's are gt_index[start[k]:start[k+1]] at distance[...]."""
    counts = np.zeros(len(pred), dtype=np.int64)
    rows = []
    pred_order = np.argsort(pred.sample, kind="stable")
    gt_order = np.argsort(gt.sample, kind="stable")
    gt_samples = gt.sample[gt_order]
    bounds = np.flatnonzero(np.diff(pred.sample[pred_order])) + 1
    for group in np.split(pred_order, bounds) if len(pred_order) else []:
        sample = pred.sample[group[0]]
        lo, hi = np.searchsorted(gt_samples, sample, side="left"), np.searchsorted(gt_samples, sample, side="right")
        if lo == hi:
            continue
        g = gt_order[lo:hi]
        d = _center_distance(pred.translation[group, None, :], gt.translation[None, g, :])
        d[d >= max_dist] = np.inf
        order = np.argsort(d, axis=1, kind="stable")
        d_sorted = np.take_along_axis(d, order, axis=1)
        valid = np.isfinite(d_sorted)
        counts[group] = valid.sum(axis=1)
        rows.append((group, g[order], d_sorted, valid))
    # lay the groups' candidates out in prediction order
    start = np.concatenate([[0], np.cumsum(counts)])
    flat_gt = np.zeros(int(start[-1]), dtype=np.int64)
    flat_d = np.zeros(int(start[-1]), dtype=np.float64)
    for group, cand, d_sorted, valid in rows:
        slots = start[group][:, None] + np.cumsum(valid, axis=1) - 1
        flat_gt[slots[valid]] = cand[valid]
        flat_d[slots[valid]] = d_sorted[valid]
    return start.tolist(), flat_gt.tolist(), flat_d.tolist()


def _greedy_match(start: list[int], gt_index: list[int], distance: list[float], n_gt: int,
                  threshold: float) -> np.ndarray:
    """[P] the GT each prediction (in descending score order) takes, -1 = false positive."""
    taken = bytearray(n_gt)
    match = np.full(len(start) - 1, -1, dtype=np.int64)
    for k in range(len(start) - 1):
        for j in range(start[k], start[k + 1]):
            g = gt_index[j]
            if not taken[g]:  # the nearest GT not yet taken: a match if close enough, else a false positive
                if distance[j] < threshold:
                    taken[g] = 1
                    match[k] = g
                break
    return match


def _no_predictions() -> dict[str, np.ndarray]:
    curve = {"recall": np.linspace(0, 1, N_RECALL), "precision": np.zeros(N_RECALL),
             "confidence": np.zeros(N_RECALL)}
    return curve | {m: np.ones(N_RECALL) for m in TP_METRICS}


def _cummean(x: np.ndarray) -> np.ndarray:
    """Running mean ignoring NaN (0 before the first number); all ones when every value is NaN."""
    valid = ~np.isnan(x)
    if not valid.any():
        return np.ones(len(x))
    total, count = np.nancumsum(x), np.cumsum(valid)
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def _angle_difference(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    """|a - b| wrapped to the period, in [0, π]."""
    d = np.mod(a - b + period / 2, period) - period / 2
    d = np.where(d > np.pi, d - 2 * np.pi, d)
    return np.abs(d)


def _match_errors(gt: BoxTable, pred: BoxTable, name: str) -> dict[str, np.ndarray]:
    """The TP errors of matched pairs (row i of `gt` matched to row i of `pred`)."""
    aligned = np.prod(np.minimum(gt.size, pred.size), axis=1)
    iou = aligned / (np.prod(gt.size, axis=1) + np.prod(pred.size, axis=1) - aligned)
    yaw_gt = quaternion_to_yaw(gt.rotation / np.linalg.norm(gt.rotation, axis=1, keepdims=True))
    yaw_pred = quaternion_to_yaw(pred.rotation / np.linalg.norm(pred.rotation, axis=1, keepdims=True))
    attr_err = np.where(gt.attribute < 0, np.nan, (gt.attribute != pred.attribute).astype(np.float64))
    return {"trans_err": _center_distance(gt.translation, pred.translation),
            "vel_err": _center_distance(gt.velocity, pred.velocity),
            "scale_err": 1 - iou,
            "orient_err": _angle_difference(yaw_gt, yaw_pred, np.pi if name == "barrier" else 2 * np.pi),
            "attr_err": attr_err}


def _class_curves(gt: BoxTable, pred: BoxTable, name: str, config: DetectionConfig) -> dict[float, dict]:
    """Per distance threshold, the devkit's `accumulate` of one class: precision, confidence and the TP errors
    at the 101 recall points."""
    n_pos = len(gt)
    if n_pos == 0:
        return {th: _no_predictions() for th in config.dist_ths}
    # descending score; among equal scores the later box first (the devkit sorts (score, index) and reverses)
    pred = pred.select(np.argsort(pred.score, kind="stable")[::-1])
    start, gt_index, distance = _candidates(gt, pred, max(config.dist_ths))
    recall_points = np.linspace(0, 1, N_RECALL)
    curves = {}
    for th in config.dist_ths:
        match = _greedy_match(start, gt_index, distance, n_pos, th)
        is_tp = match >= 0
        if not is_tp.any():
            curves[th] = _no_predictions()
            continue
        tp = np.cumsum(is_tp).astype(np.float64)
        fp = np.cumsum(~is_tp).astype(np.float64)
        recall = tp / float(n_pos)
        precision = np.interp(recall_points, recall, tp / (fp + tp), right=0)
        confidence = np.interp(recall_points, recall, pred.score, right=0)
        curve = {"recall": recall_points, "precision": precision, "confidence": confidence}
        match_confidence = pred.score[is_tp]
        errors = _match_errors(gt.select(match[is_tp]), pred.select(is_tp), name)
        for metric in TP_METRICS:
            running = _cummean(errors[metric])
            curve[metric] = np.interp(confidence[::-1], match_confidence[::-1], running[::-1])[::-1]
        curves[th] = curve
    return curves


def _average_precision(precision: np.ndarray, config: DetectionConfig) -> float:
    """Mean precision above min_precision over the recall points above min_recall, normalised to [0, 1]."""
    p = precision[round(100 * config.min_recall) + 1:] - config.min_precision
    p[p < 0] = 0
    return float(np.mean(p)) / (1.0 - config.min_precision)


def _tp_error(curve: Mapping[str, np.ndarray], metric: str, config: DetectionConfig) -> float:
    """Mean of a TP error curve from just above min_recall to the max recall reached (1 when none)."""
    first = round(100 * config.min_recall) + 1
    nonzero = np.flatnonzero(curve["confidence"])
    last = int(nonzero[-1]) if len(nonzero) else 0
    if last < first:
        return 1.0
    return float(np.mean(curve[metric][first:last + 1]))
