"""`dos detect`: CenterPoint on the shared command skeleton, end to end at smoke size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.engine.conftest import CONFIGS, run_dos, tiny_pretrain_overrides, tiny_segmentation_overrides
from tests.engine.conftest import smoke_data  # noqa: F401  (the session fixture)

DETECT = CONFIGS / "detect" / "centerpoint_outdoor.yaml"


def _leaf_keys(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_the_shipped_detect_config_lists_every_hyperparameter():
    from dos.config.schema import load_config, to_dict
    from dos.engine.detect import DetectRunConfig

    config = load_config(DetectRunConfig, DETECT)
    assert set(_leaf_keys(yaml.safe_load(DETECT.read_text()))) == set(_leaf_keys(to_dict(config)))
    assert config.detector.tasks[1] == ("truck", "construction_vehicle") and config.detector.min_overlap == 0.1


def tiny_detect_overrides(data_root: Path, steps: int = 3, **extra: str) -> list[str]:
    values = dict(item.split("=", 1) for item in tiny_segmentation_overrides(data_root, steps))
    values.update({"head.feature_stage": "0", "detector.point_cloud_range": "[-51.2,-51.2,-5.0,51.2,51.2,3.0]",
                   "detector.cell_size": "1.6", "detector.neck_channels": "[8,16]", "detector.neck_blocks": "[1,1]",
                   "detector.neck_up_channels": "8", "detector.head_channels": "8", "detector.head_conv": "8"})
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def scratch_run(smoke_data, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("detect") / "scratch"
    run_dos("detect", str(DETECT), "--out", str(out), overrides=tiny_detect_overrides(smoke_data))
    return out


def test_detect_trains_evaluates_and_writes_its_records(scratch_run, smoke_data):  # noqa: F811
    for name in ("model.pt", "predictions.json", "metrics.json", "summary.json", "history.csv", "run.json"):
        assert (scratch_run / name).is_file(), name
    metrics = json.loads((scratch_run / "metrics.json").read_text())
    assert 0.0 <= metrics["map"] <= 1.0 and 0.0 <= metrics["nds"] <= 1.0
    assert metrics["nds"] == metrics["nd_score"] and metrics["map"] == metrics["mean_ap"]
    predictions = json.loads((scratch_run / "predictions.json").read_text())["results"]
    from dos.data.dataset import SceneDataset

    val = SceneDataset("synthetic-lidar", smoke_data / "synthetic-nuscenes", "val")
    assert sorted(predictions) == sorted(val.scan_ids) and metrics["num_scenes"] == len(val)
    assert metrics["num_gt_boxes"] == sum(len(val[i]["boxes"]) for i in range(len(val)))
    for boxes in predictions.values():
        assert len(boxes) <= 500
        for box in boxes:
            assert set(box) >= {"translation", "size", "rotation", "velocity", "detection_name", "detection_score",
                                "attribute_name"}
    history = (scratch_run / "history.csv").read_text().splitlines()
    assert "heatmap" in history[0] and len(history) == 4  # header + 3 steps


def test_detect_is_deterministic_and_a_finished_run_is_not_redone(scratch_run, smoke_data, tmp_path):  # noqa: F811
    again = tmp_path / "again"
    run_dos("detect", str(DETECT), "--out", str(again), overrides=tiny_detect_overrides(smoke_data))
    a = torch.load(scratch_run / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(again / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = (again / "metrics.json").read_bytes()
    out = run_dos("detect", str(DETECT), "--out", str(again), overrides=tiny_detect_overrides(smoke_data))
    assert "complete; nothing rewritten" in out.stdout and (again / "metrics.json").read_bytes() == before


def test_detect_starts_from_a_pretrained_encoder(smoke_data, tmp_path):  # noqa: F811
    """head.pretrained loads the DOS encoder into the detector's backbone before training (recorded in the run's
    identity), and a width mismatch between config and backbone is a one-line error."""
    pretrained = tmp_path / "pretrain"
    run_dos("pretrain", str(CONFIGS / "pretrain" / "dos_outdoor.yaml"), "--out", str(pretrained),
            overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    out = tmp_path / "dos"
    run_dos("detect", str(DETECT), "--out", str(out),
            overrides=tiny_detect_overrides(smoke_data, steps=1, **{"head.pretrained": str(pretrained),
                                                                     "optim.lr": "1e-12", "train.max_steps": "1"}))
    identity = json.loads((out / "run.json").read_text())
    assert "pretrained" in identity["inputs"]
    teacher = torch.load(pretrained / "encoder.pt", weights_only=False)["teacher"]
    detector = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    name = next(k for k in teacher if k.endswith("weight") and teacher[k].ndim == 2)
    # lr 1e-12 for one step: the backbone is (to ~1e-12) the pretrained teacher
    torch.testing.assert_close(detector[f"backbone.{name}"], teacher[name], atol=1e-6, rtol=0)
    bad = run_dos("detect", str(DETECT), "--out", str(tmp_path / "bad"), check=False,
                  overrides=tiny_detect_overrides(smoke_data, **{"detector.in_channels": "5"}))
    assert bad.returncode == 2 and "detector.in_channels 5" in bad.stderr


def test_box_corners_follow_the_yaw():
    import numpy as np

    from dos.report.visualize.boxes import box_corners

    corners = box_corners(np.array([[10.0, 5.0, 0.0]]), np.array([[2.0, 4.0, 1.5]]), np.array([np.pi / 2]))[0]
    # length 4 along +y (yaw 90 deg), width 2 along x: corners at x 9..11, y 3..7; the first two are the front
    np.testing.assert_allclose(np.sort(corners[:, 0]), [9, 9, 11, 11], atol=1e-12)
    np.testing.assert_allclose(np.sort(corners[:, 1]), [3, 3, 7, 7], atol=1e-12)
    assert corners[[0, 3], 1].mean() == pytest.approx(7.0)


def test_the_bev_figure_of_a_detect_run_is_byte_reproducible(scratch_run, tmp_path):
    args = ["visualize", "boxes", str(scratch_run), "--min-score", "0"]
    run_dos(*args, "--out", str(tmp_path / "a.png"))
    run_dos(*args, "--out", str(tmp_path / "b.png"))
    first = (tmp_path / "a.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == (tmp_path / "b.png").read_bytes()
    missing = run_dos("visualize", "boxes", str(tmp_path), "--out", str(tmp_path / "c.png"), check=False)
    assert missing.returncode == 2 and "config.yaml: not found" in missing.stderr
