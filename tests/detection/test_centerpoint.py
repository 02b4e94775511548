import numpy as np
import pytest
import torch

from dos.data.boxes import Boxes
from dos.detection.centerpoint import CenterPoint
from dos.detection.config import NUSCENES_TASKS, CenterPointConfig

SMALL = dict(point_cloud_range=(-8.0, -8.0, -2.0, 8.0, 8.0, 2.0), cell_size=0.5, neck_channels=(16, 32),
             neck_blocks=(1, 1), neck_up_channels=16, head_channels=16, head_conv=16)


@pytest.mark.parametrize("change, message", [
    (dict(cell_size=0.3), "whole number of cells"),
    (dict(tasks=(("car",), ("lorry",))), "unknown class 'lorry'"),
    (dict(tasks=(("car",), ("car", "bus"))), "more than one task group"),
    (dict(code_weights=(1.0,) * 8), "code_weights needs 10"),
    (dict(nms_radius=(1.0,)), "one value per class"),
    (dict(pool="sum"), "pool must be one of"),
    (dict(score_threshold=1.5), "score_threshold must be in"),
    (dict(neck_channels=(16, 0)), "neck_channels must be > 0"),
    (dict(min_radius=-1), "min_radius must be >= 0"),
])
def test_config_errors_name_the_setting(change, message):
    with pytest.raises(ValueError, match=message):
        CenterPointConfig(8, **change)


def test_default_config_is_centerpoint_nuscenes():
    config = CenterPointConfig(32)
    assert config.tasks == NUSCENES_TASKS and len(config.tasks) == 6
    assert config.grid.shape == (128, 128)
    assert config.nms_radius[0] == pytest.approx(2.0)              # car: CenterPoint's squared radius 4
    assert config.code_weights[-2:] == (0.2, 0.2)


def test_forward_shapes_for_the_six_task_groups():
    torch.manual_seed(0)
    model = CenterPoint(CenterPointConfig(4, **SMALL))
    coord = torch.rand(200, 3) * 12 - 6
    outputs = model(torch.randn(200, 4), coord, torch.tensor([120, 200]))
    assert [o["heatmap"].shape[1] for o in outputs] == [1, 2, 2, 1, 2, 2]
    assert {name: tuple(v.shape) for name, v in outputs[1].items() if name != "heatmap"} == {
        "offset": (2, 2, 32, 32), "height": (2, 1, 32, 32), "size": (2, 3, 32, 32), "rotation": (2, 2, 32, 32),
        "velocity": (2, 2, 32, 32)}
    # heatmap bias -2.19: initial heat about 0.1 (the final conv's weights add a little noise)
    assert torch.sigmoid(outputs[0]["heatmap"]).mean().item() == pytest.approx(0.1, abs=0.05)
    with pytest.raises(ValueError, match="1 box sets for a batch of 2"):
        model.loss(outputs, [Boxes.empty()])


def test_overfits_one_box_end_to_end():
    """Features that mark the points inside a box (plus noise); a short Adam run puts the decoded box on it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = np.random.default_rng(0)
    truth = Boxes(np.array([[2.3, -1.7, 0.4]]), np.array([[1.9, 4.4, 1.6]]), np.array([0.5]), np.array([0]),
                  np.array([[1.0, -0.5]]))
    coord = np.concatenate([generator.uniform([-8, -8, -1], [8, 8, 1], (600, 3)),
                            # points inside the box: its local frame, rotated by the yaw
                            generator.uniform(-0.5, 0.5, (150, 3)) * truth.size[0, [1, 0, 2]]])
    local = coord[600:].copy()
    c, s = np.cos(0.5), np.sin(0.5)
    coord[600:, 0] = c * local[:, 0] - s * local[:, 1] + truth.center[0, 0]
    coord[600:, 1] = s * local[:, 0] + c * local[:, 1] + truth.center[0, 1]
    coord[600:, 2] += truth.center[0, 2]
    inside = np.zeros((750, 1))
    inside[600:] = 1.0
    feat = torch.tensor(np.concatenate([inside, generator.normal(size=(750, 3)) * 0.1], axis=1), dtype=torch.float32)
    coord = torch.tensor(coord, dtype=torch.float32)
    offset = torch.tensor([750])

    model = CenterPoint(CenterPointConfig(4, tasks=(("car",),), **SMALL))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = model.loss(model(feat, coord, offset), [truth])["loss"]
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first
    model.eval()
    with torch.no_grad():
        boxes, scores = model.predict(model(feat, coord, offset))[0]
    assert len(boxes) >= 1 and boxes.names()[0] == "car" and scores[0] > 0.5
    assert np.linalg.norm(boxes.center[0, :2] - truth.center[0, :2]) < 0.5
    # (on torch 2.13 CPU it lands within 2 cm, size within 5 cm, yaw within 0.06 rad; the bounds leave room)
    np.testing.assert_allclose(boxes.size[0], truth.size[0], atol=0.3)
    assert abs(boxes.yaw[0] - truth.yaw[0]) < 0.3
