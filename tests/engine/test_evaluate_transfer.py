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


COLA7 = ["driveable_ground", "structure", "vehicle", "nature", "living_being", "static_object", "other_ground"]


def _coarse_sources(smoke_data, scale: str = "1.0", clip: str = "[0, 1]") -> str:
    """nuScenes + SemanticKITTI + Waymo stand-ins read with the 7-class COLA labels (Table 4's CoLa column);
    the second source's intensity goes through a feature map."""
    roots = [smoke_data / f"synthetic-{name}" for name in ("nuscenes", "semantickitti", "waymo")]
    return ("[{format: synthetic-lidar, root: %s, reader_options: {labels: cola7}},"
            " {format: synthetic-lidar, root: %s, reader_options: {labels: cola7},"
            " features: {scale: %s, clip: %s}},"
            " {format: synthetic-lidar, root: %s, reader_options: {labels: cola7}}]"
            % (roots[0], roots[1], scale, clip, roots[2]))


def test_multi_source_coarse_finetune_transfers_to_the_coarse_target(smoke_data, tmp_path):
    """The CoLa cells' path: dos finetune on three datasets with coarse labels (data.sources), then dos evaluate
    on ParisLuco3D read with the same 7 classes; names and count agree from training to the transfer metrics."""
    run = tmp_path / "ft"
    run_dos("finetune", FINETUNE, "--out", str(run),
            overrides=tiny_segmentation_overrides(smoke_data, **{"data.sources": _coarse_sources(smoke_data)}))
    own = json.loads((run / "metrics.json").read_text())  # the three sources' val splits
    assert own["num_classes"] == 7 and set(own["iou"]) == set(COLA7)
    target = smoke_data / "synthetic-parisluco"
    out = tmp_path / "transfer.json"
    sets = ["data.sources=[]", "data.format=synthetic-lidar", f"data.root={target}", "data.reader_options.labels=cola7"]
    run_dos("evaluate", str(run), *[arg for item in sets for arg in ("--set", item)], "--out", str(out))
    metrics = json.loads(out.read_text())
    assert metrics["num_classes"] == 7 and set(metrics["iou"]) == set(COLA7) and 0 <= metrics["miou"] <= 1
    assert metrics["data_root"] == str(target) and metrics["num_scenes"] != own["num_scenes"]

    # the sources would shadow data.root: refused, not silently re-reading the training datasets
    shadowed = run_dos("evaluate", str(run), "--set", f"data.root={target}", "--set", "data.reader_options.labels=cola7",
                       "--out", str(tmp_path / "shadowed.json"), check=False)
    assert shadowed.returncode != 0 and "add --set data.sources=[]" in shadowed.stderr
    # the 8-class COLA set is another class set: refused
    eight = [item.replace("labels=cola7", "labels=cola") for item in sets]
    bad = run_dos("evaluate", str(run), *[arg for item in eight for arg in ("--set", item)],
                  "--out", str(tmp_path / "bad.json"), check=False)
    assert bad.returncode != 0 and "has 8 classes, the model of" in bad.stderr
    assert not (tmp_path / "shadowed.json").exists() and not (tmp_path / "bad.json").exists()


def test_finetune_samples_carry_each_source_feature_map(smoke_data):
    """The segmentation training sample of a mixture reads the source's mapped features (here intensity x 0.5
    clipped to [0, 0.2]), not the raw ones."""
    import torch

    from dos.config.schema import load_config
    from dos.engine.common import open_dataset
    from dos.engine.segmentation import SegmentationRunConfig, _train_sample

    overrides = tiny_segmentation_overrides(smoke_data, **{"data.sources": _coarse_sources(smoke_data, "0.5", "[0, 0.2]")})
    config = load_config(SegmentationRunConfig, FINETUNE, overrides)
    dataset = open_dataset(config.data, config.data.train_split)
    first, second = (dataset[dataset.starts[k]] for k in (0, 1))
    assert second["source"] == 1 and float(dataset.parts[1][0]["feat"].max()) > 0.2  # raw intensity exceeds the clip
    for sample, bound in ((first, 1.0), (second, 0.2)):
        _, network_input, _, labels = _train_sample(config, sample, torch.Generator().manual_seed(0))
        assert float(network_input[:, 3:].max()) <= bound + 1e-6  # [xyz, intensity]
        assert int(labels.max()) < 7
