"""Table 12 through the engine at smoke scale: SPUNet DOS pretraining, `dos distill` (SPUNet student from a frozen
DOS PTv3 teacher), and probing / fine-tuning the SPUNet that comes out."""

import json
from pathlib import Path

import pytest
import torch

from tests.engine.conftest import CONFIGS, run_dos, tiny_pretrain_overrides, tiny_segmentation_overrides

PRETRAIN = str(CONFIGS / "pretrain" / "dos_outdoor.yaml")
DISTILL = str(CONFIGS / "distill" / "distill_outdoor.yaml")
PROBE = str(CONFIGS / "probe" / "lp_outdoor.yaml")
FINETUNE = str(CONFIGS / "finetune" / "ft_outdoor.yaml")


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def tiny_distill_overrides(data_root: Path, teacher: Path, steps: int = 3, **extra: str) -> list[str]:
    values = {
        "data.format": "synthetic-lidar", "data.root": str(data_root / "synthetic-nuscenes"), "data.cache": "true",
        "student.config": "smoke", "teacher.pretrained": str(teacher), "teacher.model.config": "smoke",
        "views.grid_size": "0.2", "views.max_points": "1500",
        "train.batch_size": "2", "train.max_steps": str(steps), "train.checkpoint_every": "1",
        "train.log_every": "1", "train.num_workers": "0", "train.num_threads": "1",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def ptv3_teacher(smoke_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ptv3_pretrain")
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data))
    return out


@pytest.fixture(scope="module")
def distilled(smoke_data, ptv3_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill")
    run_dos("distill", DISTILL, "--out", str(out), overrides=tiny_distill_overrides(smoke_data, ptv3_teacher))
    return out


def test_distill_writes_a_spunet_encoder_in_the_pretrain_format(distilled, ptv3_teacher):
    for name in ("encoder.pt", "checkpoint.pt", "history.csv", "config.yaml", "provenance.json", "summary.json"):
        assert (distilled / name).is_file(), name
    weights = _weights(distilled / "encoder.pt")
    assert weights["model_config"]["backbone"] == "spunet" and weights["in_channels"] == 4
    assert any(k.startswith("stem.") for k in weights["student"])
    assert _same_state(weights["student"], weights["teacher"])  # no EMA: both entries are the distilled SPUNet
    history = (distilled / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and "cosine" in history[0]
    provenance = json.loads((distilled / "provenance.json").read_text())
    assert len(provenance["teacher_weights_sha256"]) == 64 and provenance["data_fingerprint"]
    # the frozen teacher is neither trained nor checkpointed: only the student and its projection are
    model_keys = _weights(distilled / "checkpoint.pt")["model"].keys()
    assert model_keys and all(k.startswith(("student.encoder.backbone.", "student.head.")) for k in model_keys)


def test_same_seed_gives_a_bit_identical_distilled_encoder(smoke_data, ptv3_teacher, distilled, tmp_path):
    run_dos("distill", DISTILL, "--out", str(tmp_path), overrides=tiny_distill_overrides(smoke_data, ptv3_teacher))
    assert _same_state(_weights(tmp_path / "encoder.pt")["student"], _weights(distilled / "encoder.pt")["student"])
    assert (tmp_path / "history.csv").read_text() == (distilled / "history.csv").read_text()


def test_the_teacher_stays_frozen_and_the_student_learns_on_a_fixed_batch(smoke_data, ptv3_teacher):
    from dos.config.schema import load_config
    from dos.data.dataset import SceneDataset
    from dos.engine.distill import DistillRunConfig, build_distiller, collate, load_teacher, make_sample

    torch.manual_seed(0)
    config = load_config(DistillRunConfig, DISTILL, tiny_distill_overrides(smoke_data, ptv3_teacher))
    dataset = SceneDataset("synthetic-lidar", smoke_data / "synthetic-nuscenes", "train")
    assert config.data.coord_in_feat
    batch = collate([make_sample(config, dataset[i], torch.Generator().manual_seed(i)) for i in range(2)])
    teacher = load_teacher(config, in_channels=4)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    model = build_distiller(config, 4, teacher.out_channels).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, cosines = [], []
    for _ in range(15):
        with torch.no_grad():
            target = teacher(batch.coord, batch.feat, batch.grid_coord, batch.offset)
        loss, stats = model(batch, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        cosines.append(stats["cosine"])
    assert _same_state(teacher.state_dict(), before)
    assert losses[-1] < 0.7 * losses[0] and cosines[-1] > cosines[0] + 0.2, (losses, cosines)
    assert teacher.backbone.enc_channels == (8, 16, 24)  # the PTv3 teacher, up-cast at full resolution
    assert teacher.out_channels == 48 and model.student["encoder"].out_channels == 8 + 8 + 16


def test_probe_of_the_distilled_spunet_keeps_its_encoder_and_batch_norm_frozen(smoke_data, distilled, tmp_path):
    run_dos("probe", PROBE, "--out", str(tmp_path), overrides=tiny_segmentation_overrides(
        smoke_data, **{"model.backbone": "spunet", "head.pretrained": str(distilled)}))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["mode"] == "probe" and 0 <= metrics["miou"] <= 1
    model = _weights(tmp_path / "model.pt")["state_dict"]
    encoder = _weights(distilled / "encoder.pt")["teacher"]
    # buffers included: BatchNorm ran in eval mode on the augmented training batches (running stats untouched)
    assert any("running_mean" in k for k in encoder)
    assert all(torch.equal(model[f"backbone.{k}"], v) for k, v in encoder.items())
    assert model["classifier.weight"].shape[1] == 8 + 8 + 16  # sum of the up-cast SPUNet stage widths


def test_finetune_model_loads_the_distilled_encoder_and_reads_the_spunet_decoder(smoke_data, distilled):
    from dos.config.schema import load_config
    from dos.engine.segmentation import SegmentationRunConfig, build_model

    config = load_config(SegmentationRunConfig, FINETUNE, tiny_segmentation_overrides(
        smoke_data, **{"model.backbone": "spunet", "head.pretrained": str(distilled)}))
    model = build_model(config, "finetune", in_channels=4, num_classes=5)
    encoder = _weights(distilled / "encoder.pt")["teacher"]
    state = model.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder.items())
    assert any(k.startswith("dec.") for k in state) and model.classifier.in_features == model.backbone.out_channels


def test_spunet_dos_pretraining_runs_and_feeds_the_probe(smoke_data, tmp_path):
    run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "pretrain"),
            overrides=tiny_pretrain_overrides(smoke_data, **{"model.backbone": "spunet"}))
    weights = _weights(tmp_path / "pretrain" / "encoder.pt")
    assert weights["model_config"]["backbone"] == "spunet" and any(k.startswith("stem.") for k in weights["student"])
    assert not _same_state(weights["student"], weights["teacher"])  # the EMA teacher lags the student
    history = (tmp_path / "pretrain" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and "prototype_entropy" in history[0]
    run_dos("probe", PROBE, "--out", str(tmp_path / "probe"), overrides=tiny_segmentation_overrides(
        smoke_data, **{"model.backbone": "spunet", "head.pretrained": str(tmp_path / "pretrain"),
                       "head.cache_features": "true"}))
    assert json.loads((tmp_path / "probe" / "metrics.json").read_text())["mode"] == "probe"


def test_a_teacher_config_that_does_not_fit_its_weights_fails_cleanly(smoke_data, ptv3_teacher, tmp_path):
    out = run_dos("distill", DISTILL, "--out", str(tmp_path / "run"), check=False, overrides=tiny_distill_overrides(
        smoke_data, ptv3_teacher, **{"teacher.model.config": "mini"}))
    assert out.returncode == 2 and "do not fit this backbone" in out.stderr, out.stderr
