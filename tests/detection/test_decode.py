import math

import numpy as np
import torch

from dos.data.boxes import DETECTION_CLASSES, Boxes
from dos.detection.bev import BevGrid
from dos.detection.config import NUSCENES_TASKS, REGRESSION_HEADS, CenterPointConfig
from dos.detection.decode import circle_nms, decode
from dos.detection.targets import build_targets

GRID = BevGrid((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), 0.5)   # 32 x 32
TASK_LABELS = CenterPointConfig(1).task_labels


def ideal_outputs(targets):
    """The head outputs a perfect network would give: the target heatmaps as logits, the regression targets
    written at the box centre cells."""
    outputs = []
    for task in targets:
        batch, _, height, width = task.heatmap.shape
        output = {"heatmap": torch.logit(task.heatmap.clamp(1e-6, 1 - 1e-6))}
        flat = torch.zeros(batch, height * width, 10)
        for b in range(batch):
            flat[b, task.index[b, task.mask[b]]] = task.regression[b, task.mask[b]]
        maps = flat.transpose(1, 2).reshape(batch, 10, height, width)
        start = 0
        for name, dim in REGRESSION_HEADS:
            output[name] = maps[:, start:start + dim]
            start += dim
        outputs.append(output)
    return outputs


def flat_outputs(peaks, num_tasks=len(NUSCENES_TASKS), shape=(32, 32)):
    """Outputs of background heat everywhere but at `peaks`: (task, class in task, row, col, logit, {name: values})."""
    outputs = []
    for task in range(num_tasks):
        output = {"heatmap": torch.full((1, len(TASK_LABELS[task]), *shape), -10.0)}
        output.update({name: torch.zeros(1, dim, *shape) for name, dim in REGRESSION_HEADS})
        output["rotation"][:, 1] = 1.0                                                  # yaw 0
        outputs.append(output)
    for task, cls, row, col, logit, values in peaks:
        outputs[task]["heatmap"][0, cls, row, col] = logit
        for name, value in values.items():
            outputs[task][name][0, :, row, col] = torch.tensor(value)
    return outputs


def test_ideal_outputs_decode_to_the_input_boxes():
    samples = [Boxes(np.array([[1.3, -2.6, 0.7], [-5.05, 4.4, -1.2], [6.0, 6.2, 0.1]]),
                     np.array([[2.0, 4.5, 1.6], [2.9, 11.0, 3.4], [0.6, 0.7, 1.8]]),
                     np.array([0.4, -2.9, 3.0]), np.array([0, 2, 5]),
                     np.array([[1.5, -0.5], [0.0, 8.0], [0.3, 0.2]])),
               Boxes(np.array([[-0.2, 0.3, 0.0]]), np.array([[0.5, 0.5, 1.0]]), np.array([1.0]), np.array([8]),
                     np.array([[0.0, 0.0]]))]
    outputs = ideal_outputs(build_targets(samples, GRID, TASK_LABELS))
    detections = decode(outputs, GRID, TASK_LABELS, score_threshold=0.5,
                        nms_radius=CenterPointConfig(1).nms_radius)
    assert len(detections) == 2
    for truth, (found, scores) in zip(samples, detections):
        assert len(found) == len(truth)
        assert np.all(scores > 0.99)
        order = [int(np.flatnonzero(found.label == label)[0]) for label in truth.label]
        found = found.select(np.array(order))
        np.testing.assert_allclose(found.center, truth.center, atol=1e-5)
        np.testing.assert_allclose(found.size, truth.size, rtol=1e-5)
        yaw_error = np.angle(np.exp(1j * (found.yaw - truth.yaw)))
        np.testing.assert_allclose(yaw_error, 0, atol=1e-5)
        np.testing.assert_allclose(found.velocity, truth.velocity, atol=1e-5)
        assert found.attribute[:1] == (["vehicle.moving"] if truth.label[0] == 0 else [""])


def test_circle_nms_keeps_the_best_of_close_boxes():
    centers = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [5.5, 0.0]])
    scores = np.array([0.5, 0.9, 0.3, 0.2])
    assert circle_nms(centers, scores, 2.0).tolist() == [1, 2]
    assert circle_nms(centers, scores, 0.4).tolist() == [1, 0, 2, 3]


def test_nms_acts_within_a_class_only():
    car, truck = 0, 1                                  # tasks 0 (car) and 1 (truck, construction_vehicle)
    # two cars 1 m apart (car radius 2 m) and a truck between them
    outputs = flat_outputs([(car, 0, 16, 16, 2.0, {}), (car, 0, 16, 18, 3.0, {}), (truck, 0, 16, 17, 1.0, {})])
    boxes, scores = decode(outputs, GRID, TASK_LABELS, nms_radius=CenterPointConfig(1).nms_radius)[0]
    assert boxes.names() == ["car", "truck"]
    np.testing.assert_allclose(boxes.center[:, :2], [[1.0, 0.0], [0.5, 0.0]])   # the higher-scored car
    np.testing.assert_allclose(scores, [1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))])
    # the same cell, two classes of one task group: both kept
    outputs = flat_outputs([(5, 0, 4, 4, 2.0, {}), (5, 1, 4, 4, 1.0, {})])
    boxes, _ = decode(outputs, GRID, TASK_LABELS, nms_radius=CenterPointConfig(1).nms_radius)[0]
    assert boxes.names() == ["pedestrian", "traffic_cone"]


def test_score_threshold_peaks_and_box_cap():
    peaks = [(0, 0, 2 * i, 2, 4.0 - 0.1 * i, {}) for i in range(10)] + [(0, 0, 0, 20, -3.0, {})]
    outputs = flat_outputs(peaks)
    outputs[0]["heatmap"][0, 0, 0, 3] = 3.0          # beside the peak at (0, 2): not a 3 x 3 maximum
    boxes, scores = decode(outputs, GRID, TASK_LABELS, score_threshold=0.1, nms_radius=None, max_boxes=6)[0]
    assert len(boxes) == 6 and np.all(np.diff(scores) < 0)
    np.testing.assert_allclose(boxes.center[:, 1], -8.0 + 2 * np.arange(6) * 0.5)
    boxes, _ = decode(outputs, GRID, TASK_LABELS, score_threshold=0.1, nms_radius=None)[0]
    assert len(boxes) == 10                           # the -3 logit (0.047) is below the threshold


def test_decoded_labels_are_global_class_indices():
    outputs = flat_outputs([(4, 1, 10, 10, 2.0, {"size": [0.0, math.log(2.0), 0.0]})])   # bicycle
    boxes, _ = decode(outputs, GRID, TASK_LABELS)[0]
    assert boxes.label.tolist() == [DETECTION_CLASSES.index("bicycle")]
    np.testing.assert_allclose(boxes.size, [[1.0, 2.0, 1.0]])
