import math

import numpy as np
import pytest

from dos.data.boxes import Boxes
from dos.detection.bev import BevGrid
from dos.detection.targets import build_targets, gaussian_radius

GRID = BevGrid((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), 0.5)   # 32 x 32
CAR = ((0,),)


def boxes(centers, sizes=None, yaws=None, labels=None, velocity=None):
    m = len(centers)
    return Boxes(np.asarray(centers, float), np.asarray(sizes if sizes is not None else [[2.0, 4.0, 1.5]] * m),
                 np.asarray(yaws if yaws is not None else [0.0] * m),
                 np.asarray(labels if labels is not None else [0] * m), velocity)


def test_gaussian_radius_hand_values():
    # 10 x 10 cells, overlap 0.1: r1 = (20 + sqrt(400 - 4 * 900/11)) / 2, r2 = (40 + sqrt(1600 - 16 * 90)) / 2,
    # r3 = (-4 + sqrt(16 + 4 * 0.4 * 90)) / 2 = (-4 + sqrt(160)) / 2 is the smallest
    assert gaussian_radius(10, 10, 0.1) == pytest.approx((-4 + math.sqrt(160)) / 2)
    # 4 x 2 cells: r3 = (-1.2 + sqrt(1.44 + 4 * 0.4 * 7.2)) / 2 = (-1.2 + 3.6) / 2
    assert gaussian_radius(4, 2, 0.1) == pytest.approx(1.2)


def test_heatmap_gaussian_and_regression_at_the_centre_cell():
    # centre (1.3, -2.6) -> continuous cell (18.6, 10.8): column 18, row 10
    sample = boxes([[1.3, -2.6, 0.7]], sizes=[[2.0, 4.0, 1.5]], yaws=[0.4], velocity=[[1.5, -0.5]])
    (task,) = build_targets([sample], GRID, CAR, max_objects=4)
    heat = task.heatmap[0, 0]
    assert heat[10, 18] == 1 and heat.max() == 1 and (heat == 1).sum() == 1
    # box 4 x 8 cells: radius int(gaussian_radius(8, 4)) = 2 = min radius; sigma = 5/6
    assert gaussian_radius(8, 4, 0.1) < 3
    assert heat[10, 19].item() == pytest.approx(math.exp(-1 / (2 * (5 / 6) ** 2)))
    assert heat[12, 18] > 0 and heat[13, 18] == 0 and heat[10, 21] == 0
    assert task.mask.tolist() == [[True, False, False, False]]
    assert task.index[0, 0] == 10 * 32 + 18
    expected = [0.6, 0.8, 0.7, math.log(2.0), math.log(4.0), math.log(1.5), math.sin(0.4), math.cos(0.4), 1.5, -0.5]
    assert task.regression[0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert task.weight[0, 0].tolist() == [1.0] * 10 and not task.weight[0, 1:].any()


def test_big_box_gets_a_wider_gaussian():
    sample = boxes([[0.1, 0.1, 0.0]], sizes=[[10.0, 10.0, 3.0]])   # 20 x 20 cells: radius int(8.65) = 8
    (task,) = build_targets([sample], GRID, CAR)
    row = task.heatmap[0, 0, 16]
    assert row[16 + 8] > 0 and row[16 + 9] == 0


def test_boxes_outside_the_range_and_other_classes_are_dropped():
    sample = boxes([[8.5, 0.0, 0.0], [0.0, -9.0, 0.0], [1.0, 1.0, 0.0]], labels=[0, 0, 5])
    (task,) = build_targets([sample], GRID, CAR)
    assert not task.mask.any() and not task.heatmap.any()


def test_task_groups_get_their_own_classes_and_channels():
    sample = boxes([[0.0, 0.0, 0.0], [3.0, 3.0, 0.0]], labels=[5, 8])          # pedestrian, traffic_cone
    car, walkers = build_targets([sample], GRID, ((0,), (5, 8)))
    assert not car.mask.any()
    assert walkers.mask[0].sum() == 2
    assert walkers.heatmap[0, 0, 16, 16] == 1 and walkers.heatmap[0, 1, 22, 22] == 1
    assert walkers.heatmap[0, 0, 22, 22] == 0


def test_unknown_velocity_is_not_a_target():
    sample = boxes([[0.0, 0.0, 0.0], [3.0, 3.0, 0.0]], velocity=[[np.nan, np.nan], [2.0, 1.0]])
    (task,) = build_targets([sample], GRID, CAR)
    assert task.weight[0, 0].tolist() == [1.0] * 8 + [0.0, 0.0]
    assert task.regression[0, 0, 8:].tolist() == [0.0, 0.0]
    assert task.weight[0, 1].tolist() == [1.0] * 10


def test_max_objects_caps_the_slots_in_input_order():
    sample = boxes([[0.0, 0.0, 0.0], [3.0, 3.0, 0.0], [-3.0, -3.0, 0.0]])
    (task,) = build_targets([sample, boxes([[1.0, 1.0, 0.0]])], GRID, CAR, max_objects=2)
    assert task.mask.tolist() == [[True, True], [True, False]]
    assert task.index[0].tolist() == [16 * 32 + 16, 22 * 32 + 22]
    assert task.heatmap[0, 0, 10, 10] == 0                                      # the third box is not drawn
    assert task.heatmap[1, 0, 18, 18] == 1 and task.heatmap[1, 0, 16, 16] < 1  # samples kept apart
