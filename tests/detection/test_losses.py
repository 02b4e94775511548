import math

import pytest
import torch

from dos.detection.losses import centerpoint_loss, focal_loss, regression_loss
from dos.detection.targets import TaskTargets


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_focal_loss_hand_computation():
    logits = torch.tensor([0.5, -1.0, 2.0]).view(1, 1, 1, 3)
    target = torch.tensor([1.0, 0.5, 0.0]).view(1, 1, 1, 3)
    p0, p1, p2 = (sigmoid(x) for x in (0.5, -1.0, 2.0))
    expected = -((1 - p0) ** 2 * math.log(p0)              # the object's centre
                 + (1 - 0.5) ** 4 * p1 ** 2 * math.log(1 - p1)  # near it: penalty reduced by (1 - y)^4
                 + p2 ** 2 * math.log(1 - p2))             # background
    assert focal_loss(logits, target, 1).item() == pytest.approx(expected, rel=1e-5)
    assert focal_loss(logits, target, 2).item() == pytest.approx(expected / 2, rel=1e-5)
    assert focal_loss(logits, target, 0).item() == pytest.approx(expected, rel=1e-5)   # normalised by >= 1


def test_regression_loss_masks_and_weights_channels():
    pred = torch.tensor([[[1.0, 5.0], [3.0, 9.0], [100.0, 100.0]]])     # [B=1, K=3, D=2]
    target = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    weight = torch.tensor([[[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])       # box 2's channel 1 unknown; slot 3 empty
    # channel 0: (|1| + |2|) / 2 boxes; channel 1: |4| / 1 box
    got = regression_loss(pred, target, weight, torch.tensor([1.0, 0.5]))
    assert got.item() == pytest.approx(1.5 * 1.0 + 4.0 * 0.5)


def test_total_is_heatmap_plus_weighted_regression():
    output = {"heatmap": torch.zeros(1, 1, 2, 2), "offset": torch.zeros(1, 2, 2, 2), "height": torch.zeros(1, 1, 2, 2),
              "size": torch.zeros(1, 3, 2, 2), "rotation": torch.zeros(1, 2, 2, 2), "velocity": torch.zeros(1, 2, 2, 2)}
    output["height"][0, 0, 1, 0] = 3.0                                     # cell (row 1, col 0) = index 2
    heat = torch.zeros(1, 1, 2, 2)
    heat[0, 0, 1, 0] = 1
    regression = torch.zeros(1, 1, 10)
    regression[0, 0, 2] = 1.0                                              # height target 1: error 2
    target = TaskTargets(heat, torch.tensor([[2]]), torch.tensor([[True]]), regression, torch.ones(1, 1, 10))
    code = (1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
    losses = centerpoint_loss([output], [target], code, heatmap_weight=1.0, regression_weight=0.25)
    # logits 0: p = 0.5 everywhere; one positive, three negatives with y = 0
    heat_expected = -(0.25 * math.log(0.5) + 3 * 0.25 * math.log(0.5))
    assert losses["heatmap"].item() == pytest.approx(heat_expected, rel=1e-5)
    assert losses["regression"].item() == pytest.approx(2.0 * 0.5)
    assert losses["loss"].item() == pytest.approx(heat_expected + 0.25 * 1.0, rel=1e-5)
