"""What the drawings show, computed with torch on one scene: a frozen encoder's full-resolution features, the
pretraining teacher's prototype softmaps, and a trained run's predictions. Every path reuses the engine's own
(the linear probe's features, the objective's logits and softmaps, the evaluation protocol)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dos.errors import DosError


def encoder_file(path: str | os.PathLike) -> Path:
    """A pretraining run folder's encoder.pt, or the file itself; a DosError naming it when it is missing."""
    from dos.engine import weights

    path = weights.encoder_file(path)
    if not path.is_file():
        raise DosError(f"{path}: not found (expected a dos pretrain / distill run folder or its encoder.pt)")
    return path


def load_encoder(path: str | os.PathLike, which: str = "teacher") -> tuple[nn.Module, dict[str, Any]]:
    """(the frozen backbone of an encoder.pt, built in encoder mode from the model config it records; the file's
    record). `which`: the EMA teacher's weights (default) or the student's."""
    from dos.config.schema import ConfigError, from_dict
    from dos.engine.common import ModelConfig
    from dos.engine.models import build_backbone
    from dos.engine.weights import load_pretrained_backbone
    from dos.utils.io import load_torch

    path = encoder_file(path)
    record = load_torch(path, "pretrained encoder")
    if not isinstance(record, dict) or "model_config" not in record or "in_channels" not in record:
        raise DosError(f"{path}: not an encoder.pt of dos pretrain / distill (no model_config / in_channels)")
    try:
        model = from_dict(ModelConfig, record["model_config"], "model_config")
    except ConfigError as error:
        raise DosError(f"{path}: {error}") from None
    backbone = build_backbone(model, record["in_channels"], enc_mode=True)
    load_pretrained_backbone(backbone, path, which)
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval(), record


def check_channels(path: str | os.PathLike, record: dict[str, Any], in_channels: int) -> None:
    if record["in_channels"] != in_channels:
        raise DosError(f"{path}: the encoder takes {record['in_channels']} input channels, this data gives "
                       f"{in_channels} (another data.format, or data.coord_in_feat differs from its pretraining)")


def _grid_input(sample: dict, grid_size: float, coord_in_feat: bool):
    """The probe's input of a scene: one point per voxel (the first, deterministic), as `_cached_features`."""
    from dos.data.transforms import grid_sample
    from dos.engine.segmentation import network_input

    kept = grid_sample(sample["coord"], grid_size)
    coord = sample["coord"][kept.index]
    feat = network_input(coord, sample["feat"][kept.index], coord_in_feat)
    return kept, coord, feat, torch.tensor([coord.shape[0]])


@torch.no_grad()
def full_resolution_features(backbone: nn.Module, sample: dict, grid_size: float, coord_in_feat: bool
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(features [M, C] of the scene's voxels: every encoder stage up-cast to the input grid and concatenated,
    exactly the linear probe's features; voxel of each point [N])."""
    from dos.engine.segmentation import SegmentationModel

    kept, coord, feat, offset = _grid_input(sample, grid_size, coord_in_feat)
    probe = SegmentationModel(backbone, num_classes=1, mode="probe")
    features = probe.features(coord, feat, kept.grid_coord, offset)
    return features.double().numpy(), kept.inverse.numpy()


@dataclass
class TeacherHead:
    head: nn.Module
    prototypes: torch.Tensor   # [K, D], unit norm
    supervision_stage: int
    temperature: float
    objective: Any             # dos.objectives.targets.TargetConfig


def load_teacher_head(path: str | os.PathLike, record: dict[str, Any]) -> TeacherHead:
    """The teacher's projection head and prototypes that `dos pretrain` saved in encoder.pt (`teacher_head`)."""
    from dos.config.schema import ConfigError, from_dict
    from dos.objectives.targets import TargetConfig
    from dos.pretrain.heads import ProjectionHead, Prototypes

    saved = record.get("teacher_head")
    if saved is None:
        raise DosError(f"{path}: has no teacher head and prototypes (`teacher_head`): written by a dos pretrain "
                       "of an older version, or by dos distill; re-run the pretraining")
    try:
        shape = saved["head_config"]
        head = ProjectionHead(shape["in_channels"], shape["hidden_channels"], shape["out_channels"])
        head.load_state_dict(saved["head"])
        prototypes = Prototypes(shape["num_prototypes"], shape["out_channels"])
        prototypes.load_state_dict(saved["prototypes"])
        objective = from_dict(TargetConfig, saved["objective"], "objective")
    except (KeyError, RuntimeError, ConfigError) as error:
        raise DosError(f"{path}: unreadable teacher_head ({type(error).__name__}: {error})") from None
    if objective.target == "regression":
        raise DosError(f"{path}: pretrained with objective.target=regression, which has no prototypes to draw")
    return TeacherHead(head.eval(), prototypes.unit_vectors().detach(), int(shape["supervision_stage"]),
                       float(saved["teacher_temp"]), objective)


@torch.no_grad()
def unit_embeddings(encoder: nn.Module, head: nn.Module, sample: dict, grid_size: float, coord_in_feat: bool
                    ) -> tuple[torch.Tensor, np.ndarray]:
    """(unit-norm head embeddings [U, D] of the scene's supervision units, unit of each point [N]). `encoder`
    follows the pretraining encoder contract (dos.pretrain.model: EncoderOutput)."""
    kept, coord, feat, offset = _grid_input(sample, grid_size, coord_in_feat)
    out = encoder(coord, feat, kept.grid_coord, offset)
    embed = F.normalize(head(out.unit_feat).float(), dim=-1)
    return embed, out.point_to_unit[kept.inverse].numpy()


@dataclass
class PrototypeMaps:
    """Per point: `softmaps` [N, K] (each prototype's softmap over the scene's units, read at the point's unit),
    `assigned` [N] (argmax prototype), `usage` [K] (points assigned to each prototype)."""

    softmaps: np.ndarray
    assigned: np.ndarray
    usage: np.ndarray

    def top(self, k: int) -> list[int]:
        """The k most-used prototypes (ties by index)."""
        order = np.lexsort((np.arange(len(self.usage)), -self.usage))
        return [int(i) for i in order[:k]]


@torch.no_grad()
def prototype_maps(embed: torch.Tensor, prototypes: torch.Tensor, objective: Any, temperature: float,
                   point_unit: np.ndarray) -> PrototypeMaps:
    """The teacher's softmaps of one scene: logits cosine / temperature (`prototype_logits`), normalised over
    the scene's units for each prototype (`softmap`, one cloud), as the Softmap objective's teacher side."""
    from dos.objectives.softmap import softmap
    from dos.objectives.targets import prototype_logits

    logits = prototype_logits(objective, embed, prototypes.to(embed.dtype), temperature)
    maps = softmap(logits).double().numpy()[point_unit]
    assigned = logits.argmax(1).numpy()[point_unit]
    return PrototypeMaps(maps, assigned, np.bincount(assigned, minlength=prototypes.shape[0]))


def teacher_encoder(backbone: nn.Module, stage: int) -> nn.Module:
    """The pretraining encoder around a backbone (features of the supervision grid `stage`)."""
    from dos.pretrain.encoder import PTv3Encoder

    return PTv3Encoder(backbone, stage).eval()


def predicted_labels(model: nn.Module, config: Any, sample: dict) -> np.ndarray:
    """The class of every point of one scene, with the run's evaluation protocol (`scene_probabilities`)."""
    from dos.engine.segmentation import scene_probabilities

    return scene_probabilities(model, sample, config, torch.device("cpu")).argmax(1).numpy()
