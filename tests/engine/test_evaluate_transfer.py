"""`dos evaluate RUN --set data.*`: zero-shot transfer of a trained run to another dataset with the same classes
(Table 4), and a clear error for a dataset with other classes."""

from __future__ import annotations

import json

from tests.engine.conftest import CONFIGS, run_dos, tiny_segmentation_overrides

FINETUNE = str(CONFIGS / "finetune" / "ft_outdoor.yaml")


def test_evaluate_on_another_dataset(smoke_data, tmp_path):
    run = tmp_path / "ft"
    run_dos("finetune", FINETUNE, "--out", str(run), overrides=tiny_segmentation_overrides(smoke_data))
    target = smoke_data / "synthetic-parisluco"
    out = tmp_path / "transfer.json"
    run_dos("evaluate", str(run), "--set", f"data.root={target}", "--set", "data.format=synthetic-lidar",
            "--out", str(out))
    metrics = json.loads(out.read_text())
    assert 0 <= metrics["miou"] <= 1 and metrics["data_root"] == str(target)
    assert metrics["overrides"] == [f"data.root={target}", "data.format=synthetic-lidar"]
    own = json.loads((run / "metrics.json").read_text())
    assert metrics["num_scenes"] != own["num_scenes"] or metrics["iou"] != own["iou"]  # another dataset was read

    bad = run_dos("evaluate", str(run), "--set", f"data.root={smoke_data / 'synthetic-scannet'}",
                  "--set", "data.format=synthetic-rooms", "--out", str(tmp_path / "bad.json"), check=False)
    assert bad.returncode != 0 and "has 20 classes, the model of" in bad.stderr
    assert not (tmp_path / "bad.json").exists()


def test_finetune_and_evaluate_on_coarse_labels(smoke_data, tmp_path):
    """`data.reader_options.labels=cola`: the CoLa cell's path (train on a source, score the unseen target) runs
    unchanged with the coarse classes; the target read with its own 17 classes is refused."""
    run = tmp_path / "ft"
    run_dos("finetune", FINETUNE, "--out", str(run),
            overrides=tiny_segmentation_overrides(smoke_data, **{"data.reader_options.labels": "cola"}))
    target = smoke_data / "synthetic-parisluco"
    out = tmp_path / "transfer.json"
    run_dos("evaluate", str(run), "--set", f"data.root={target}", "--out", str(out))
    metrics = json.loads(out.read_text())
    assert len(metrics["iou"]) == 8 and 0 <= metrics["miou"] <= 1
    bad = run_dos("evaluate", str(run), "--set", f"data.root={target}", "--set", "data.reader_options={}",
                  "--out", str(tmp_path / "bad.json"), check=False)
    assert bad.returncode != 0 and "has 17 classes, the model of" in bad.stderr
