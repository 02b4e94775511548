"""`dos visualize`: byte-reproducible drawings, PLY files that read back, activation maps and error panels that
show what they should, the Zipf exponent fit, and errors that name the file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dos.data.readers.ply import read_ply_vertices
from dos.data.synthetic.figures import zipf_exponent
from dos.engine.common import DataConfig
from dos.errors import DosError
from dos.objectives.targets import TargetConfig
from dos.pretrain.model import EncoderOutput
from dos.report.visualize.colors import CORRECT, IGNORED, RANKED, WRONG, pca_colors, principal_components
from dos.report.visualize.features import encoder_file, load_teacher_head, prototype_maps, unit_embeddings
from dos.report.visualize.ply import write_ply
from dos.report.visualize.predictions import Prediction, prediction_panels
from dos.report.visualize.prototypes import argmax_panel
from dos.report.visualize.scene import open_scene

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("road", "car", "building")


def _dos(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "dos", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"dos {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def _sets(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    from dos.data.synthetic.benchmark import generate_benchmark

    out = tmp_path_factory.mktemp("synthetic")
    generate_benchmark(out, "smoke", 0)
    return out


TINY = {"data.format": "synthetic-lidar", "data.cache": "true", "model.config": "smoke",
        "model.supervision_stage": "1", "train.batch_size": "2", "train.max_steps": "2",
        "train.checkpoint_every": "1", "train.log_every": "1", "train.num_workers": "0", "train.num_threads": "1"}


@pytest.fixture(scope="module")
def pretrained(smoke, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pretrain"
    _dos("pretrain", "dos/config/pretrain/dos_outdoor.yaml", "--out", str(out), *_sets({
        **TINY, "data.root": str(smoke / "synthetic-nuscenes"), "views.grid_size": "0.2", "views.max_points": "1500",
        "masking.block_size": "2.0", "distill.head_hidden": "32", "distill.head_dim": "16",
        "distill.num_prototypes": "16", "distill.cross_view_radius": "0.4"}))
    return out


# -- PCA colours and byte-reproducible figures ---------------------------------------------------------------------

def test_pca_colours_are_deterministic_principal_components():
    features = np.random.default_rng(0).normal(size=(500, 12)) * np.arange(1, 13)
    first = pca_colors(features)
    assert first.shape == (500, 3) and first.min() >= 0.0 and first.max() <= 1.0
    assert np.array_equal(first, pca_colors(features.copy()))
    # the projections are the SVD's leading components, each signed so that its largest loading is positive
    centred = features - features.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:3].T * np.sign(vt[:3][np.arange(3), np.abs(vt[:3]).argmax(1)])
    assert np.allclose(principal_components(features), centred @ axes)


def test_pca_figure_and_ply_are_byte_identical_across_runs(pretrained, tmp_path):
    outputs = []
    for attempt in ("a", "b"):
        png, ply = tmp_path / f"pca_{attempt}.png", tmp_path / f"pca_{attempt}.ply"
        _dos("visualize", "pca", str(pretrained), "--out", str(png), "--ply", str(ply))
        outputs.append((png.read_bytes(), ply.read_bytes()))
    assert outputs[0] == outputs[1]
    vertices = read_ply_vertices(tmp_path / "pca_a.ply")
    assert len(vertices["x"]) > 1000 and {"red", "green", "blue"} <= set(vertices)


def test_prototype_maps_of_a_pretraining_run(pretrained, tmp_path):
    png, ply = tmp_path / "protos.png", tmp_path / "protos.ply"
    _dos("visualize", "prototypes", str(pretrained / "encoder.pt"), "--top-k", "2", "--out", str(png), "--ply",
         str(ply))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    colours = np.stack([read_ply_vertices(ply)[c] for c in ("red", "green", "blue")], 1)
    # the most-used prototype has the first ranked colour
    assert (colours == np.rint(RANKED[0] * 255)).all(1).any()


# -- PLY -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [True, False])
def test_ply_reads_back_the_same_points_and_colours(tmp_path, binary):
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(257, 3)).astype(np.float32) * 30
    rgb = rng.integers(0, 256, size=(257, 3), dtype=np.uint8)
    path = write_ply(tmp_path / "cloud.ply", xyz, rgb, binary=binary)
    vertices = read_ply_vertices(path)
    assert np.array_equal(np.stack([vertices[c] for c in "xyz"], 1), xyz)
    assert np.array_equal(np.stack([vertices[c] for c in ("red", "green", "blue")], 1), rgb)
    assert vertices["red"].dtype == np.uint8
    assert (b"binary_little_endian" in path.read_bytes()[:60]) == binary


def test_ply_takes_float_colours_in_unit_range(tmp_path):
    path = write_ply(tmp_path / "c.ply", np.zeros((2, 3)), np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 0.0]]))
    vertices = read_ply_vertices(path)
    assert vertices["green"].tolist() == [128, 255] and vertices["blue"].tolist() == [255, 0]


# -- activation maps -------------------------------------------------------------------------------------------------

class HalfSpaceEncoder(nn.Module):
    """A hand-built encoder: the unit of each point is itself; its feature is (x < 0, x > 0) as a one-hot."""

    def forward(self, coord, feat, grid_coord, offset):
        unit_feat = torch.stack([(coord[:, 0] < 0).float(), (coord[:, 0] > 0).float()], 1)
        return EncoderOutput(unit_feat=unit_feat, point_to_unit=torch.arange(len(coord)),
                             unit_offset=torch.tensor([len(coord)]))


def test_activation_maps_highlight_the_points_their_prototype_points_at():
    rng = np.random.default_rng(2)
    coord = torch.from_numpy(rng.uniform(-10, 10, size=(400, 3)).astype(np.float32))
    coord[:300, 0] = coord[:300, 0].abs() + 0.5  # 300 points at x > 0, 100 at x < 0
    coord[300:, 0] = -coord[300:, 0].abs() - 0.5
    sample = {"coord": coord, "feat": torch.zeros(400, 1)}
    embed, point_unit = unit_embeddings(HalfSpaceEncoder(), nn.Identity(), sample, 0.01, coord_in_feat=True)
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    prototypes = prototypes / prototypes.norm(dim=1, keepdim=True)
    maps = prototype_maps(embed, prototypes, TargetConfig(), 0.1, point_unit)
    positive = coord[:, 0].numpy() > 0
    assert np.array_equal(maps.assigned, np.where(positive, 1, 0))
    assert maps.usage.tolist() == [100, 300, 0] and maps.top(2) == [1, 0]
    # each prototype's softmap is concentrated on its half space, and sums to 1 over the scene's units
    assert maps.softmaps[positive, 1].min() > 100 * maps.softmaps[~positive, 1].max()
    assert maps.softmaps[~positive, 0].min() > 100 * maps.softmaps[positive, 0].max()
    assert np.allclose(maps.softmaps.sum(0), 1.0)
    panel = argmax_panel(maps)
    assert np.array_equal(panel.colors[positive], np.tile(RANKED[0], (300, 1)))
    assert np.array_equal(panel.colors[~positive], np.tile(RANKED[1], (100, 1)))
    assert "2 of 3 prototypes used" in panel.title


# -- prediction panels -----------------------------------------------------------------------------------------------

def test_prediction_panels_mark_exactly_the_wrong_points():
    truth = np.array([0, 1, 2, -1, 1, 0, 2])
    predicted = np.array([0, 2, 2, 1, 1, 1, 2])
    wrong = np.array([False, True, False, False, False, True, False])  # the ignored point is never wrong
    panels = prediction_panels(truth, [Prediction("DOS", predicted)], NAMES, ignore_index=-1)
    assert [p.title.split("\n")[0] for p in panels] == ["ground truth", "DOS: prediction", "DOS: errors"]
    errors = panels[2]
    assert np.array_equal((errors.colors == WRONG).all(1), wrong)
    assert np.array_equal((errors.colors == CORRECT).all(1), ~wrong & (truth >= 0))
    assert (errors.colors[3] == IGNORED).all()
    assert np.array_equal(errors.on_top, wrong)
    assert "2 of 6 labelled points wrong" in errors.title
    assert [name for name, _ in panels[0].legend] == list(NAMES)


def test_predictions_and_figure5_of_finetuned_runs(smoke, pretrained, tmp_path):
    run = tmp_path / "finetune"
    _dos("finetune", "dos/config/finetune/ft_outdoor.yaml", "--out", str(run), *_sets({
        **TINY, "data.root": str(smoke / "synthetic-semantickitti"), "head.grid_size": "0.2"}))
    png, ply = tmp_path / "pred.png", tmp_path / "pred.ply"
    _dos("visualize", "predictions", str(run), "--out", str(png), "--ply", str(ply))
    assert png.is_file() and len(read_ply_vertices(ply)["x"]) > 1000
    figure = tmp_path / "figure5.png"
    _dos("visualize", "figure5", "--runs", f"supervised={run}", f"DOS={run}", "--set",
         f"data.root={smoke / 'synthetic-parisluco'}", "--out", str(figure))
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_figure4_draws_frequencies_and_two_models(smoke, pretrained, tmp_path):
    out = tmp_path / "figure4.png"
    _dos("visualize", "figure4", "--benchmark", str(smoke), "--models", f"alpha 1.3={pretrained}",
         f"alpha 0={pretrained}", "--out", str(out))
    first = out.read_bytes()
    _dos("visualize", "figure4", "--benchmark", str(smoke), "--models", f"alpha 1.3={pretrained}",
         f"alpha 0={pretrained}", "--out", str(out))
    assert out.read_bytes() == first


# -- Zipf exponent ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.7, 1.3, 2.0])
def test_zipf_exponent_is_recovered_from_exact_and_sampled_counts(alpha):
    rank = np.arange(1, 61)
    exact = np.rint(1e9 * rank ** -alpha).astype(np.int64)
    assert zipf_exponent(exact, "lsq") == pytest.approx(alpha, abs=1e-3)
    assert zipf_exponent(exact, "mle") == pytest.approx(alpha, abs=1e-3)
    p = rank ** -alpha / (rank ** -alpha).sum()
    sampled = np.random.default_rng(3).multinomial(500_000, p)
    assert zipf_exponent(np.random.default_rng(4).permutation(sampled), "mle") == pytest.approx(alpha, abs=0.02)


# -- errors name the file --------------------------------------------------------------------------------------------

def test_a_missing_run_is_a_dos_error_naming_it(tmp_path):
    with pytest.raises(DosError, match=re.escape(f"{tmp_path / 'nothing'}: not found")):
        encoder_file(tmp_path / "nothing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(DosError, match=re.escape(f"{tmp_path / 'empty_run' / 'encoder.pt'}: not found")):
        encoder_file(tmp_path / "empty_run")
    out = _dos("visualize", "predictions", str(tmp_path / "gone"), "--out", str(tmp_path / "p.png"), check=False)
    assert out.returncode == 2 and f"{tmp_path / 'gone' / 'config.yaml'}: missing" in out.stderr
    out = _dos("visualize", "pca", str(tmp_path / "gone"), "--out", str(tmp_path / "p.png"), check=False)
    assert out.returncode == 2 and f"{tmp_path / 'gone'}: not found" in out.stderr


def test_a_scene_not_in_the_split_is_a_dos_error_naming_the_root(smoke):
    root = smoke / "synthetic-nuscenes"
    data = DataConfig(format="synthetic-lidar", root=str(root))
    with pytest.raises(DosError, match=re.escape(f"{root}: scene 'no_such_scan' is not in split 'val'")):
        open_scene(data, "val", "no_such_scan")


def test_an_encoder_without_teacher_head_is_a_dos_error_naming_it(tmp_path):
    path = tmp_path / "encoder.pt"
    with pytest.raises(DosError, match=re.escape(f"{path}: has no teacher head")):
        load_teacher_head(path, {"teacher": {}, "model_config": {}, "in_channels": 4})
