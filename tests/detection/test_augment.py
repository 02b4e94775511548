"""Boxes follow the points under one SpatialAugment draw (rotation, scale, flips)."""

import math

import numpy as np
import pytest
import torch

from dos.data.boxes import Boxes
from dos.data.transforms import RigidDraw, SpatialAugment
from dos.detection.augment import transform_boxes


def _inside(points: np.ndarray, boxes: Boxes, i: int) -> np.ndarray:
    """Points inside box i (in its own frame: |local x| <= length / 2, |local y| <= width / 2, |dz| <= h / 2)."""
    d = points - boxes.center[i]
    c, s = math.cos(boxes.yaw[i]), math.sin(boxes.yaw[i])
    along, across = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    w, length, h = boxes.size[i]
    return (np.abs(along) <= length / 2) & (np.abs(across) <= w / 2) & (np.abs(d[:, 2]) <= h / 2)


@pytest.mark.parametrize("sign", [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)])
def test_points_inside_a_box_stay_inside_and_velocity_turns_with_it(sign):
    rng = np.random.default_rng(0)
    boxes = Boxes(np.array([[10.0, -4.0, 0.8]]), np.array([[1.9, 4.6, 1.6]]), np.array([0.7]), np.array([0]),
                  velocity=np.array([[3.0, 1.0]]))
    points = rng.uniform(-30, 30, size=(20000, 3))
    points[:, 2] = rng.uniform(-1, 3, size=20000)
    before = _inside(points, boxes, 0)
    assert before.sum() > 20
    draw = RigidDraw(angle=0.9, scale=1.04, sign=sign)
    moved = draw.apply(torch.from_numpy(points)).numpy()
    after = transform_boxes(boxes, draw)
    np.testing.assert_array_equal(_inside(moved, after, 0), before)
    # the heading follows the box: its front point moves to the new front point
    front = boxes.center[0] + np.array([math.cos(0.7), math.sin(0.7), 0.0]) * 2.3
    new_front = draw.apply(torch.from_numpy(front[None])).numpy()[0]
    expected = after.center[0] + np.array([math.cos(after.yaw[0]), math.sin(after.yaw[0]), 0.0]) * 2.3 * 1.04
    np.testing.assert_allclose(new_front, expected, atol=1e-9)
    v = draw.apply(torch.tensor([[3.0, 1.0, 0.0]], dtype=torch.float64)).numpy()[0, :2]
    np.testing.assert_allclose(after.velocity[0], v, atol=1e-12)
    assert -math.pi <= after.yaw[0] < math.pi


def test_spatial_augment_with_a_given_draw_equals_its_own_draw():
    """`augment(coord, g)` and `augment(coord, g', augment.draw(g'))` give the same points for equal generators:
    the draw is the same random numbers in the same order, so pretraining views did not change."""
    augment = SpatialAugment()
    coord = torch.randn(100, 3)
    a = augment(coord, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    b = augment(coord, g, augment.draw(g))
    assert torch.equal(a, b)
