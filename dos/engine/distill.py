"""`dos distill CONFIG --out RUN`: distil a SPUNet student from a frozen DOS PTv3 teacher (Table 12, "+ distill
from PTv3": 10 epochs from a frozen DOS model).

What is trained. Each sample is one random crop of a scan with spatial and photometric augmentation, grid-sampled
at `views.grid_size` (no masking, no second view): the teacher and the student see the same points. The frozen
teacher (a `dos pretrain` run's encoder, eval mode, no gradient) and the student encoder both up-cast their stages
to `loss.stage` and concatenate them (`dos.pretrain.encoder.PTv3Encoder`, which takes either backbone). A
projection of the student's features (linear by default, or a one-hidden-layer MLP) regresses the teacher's, and
the loss is the mean over all supervision voxels of the batch of 1 - cos(projection(student), teacher).

Why full resolution (`loss.stage: 0`, the default): stage 0 up-cast is the feature space that linear probing
reads (Sonata's protocol, `dos probe`), so the student learns to reproduce the teacher's probe features point by
point, and both networks share stage 0's voxels exactly (the input voxels). A coarser stage k > 0 is supported
(cheaper, closer to the pretraining supervision grid); student voxels are then paired with the teacher voxel of
their points (both backbones pool by stride 2 from the same grid, so the voxels coincide).

Outputs, as `dos pretrain` writes them (config.yaml, provenance.json, history.csv, checkpoint.pt, summary.json)
and RUN/encoder.pt = {"student": SPUNet state, "teacher": the same SPUNet state, "model_config", "in_channels",
"distilled_from"}. There is no EMA here: "teacher" repeats the student's weights so that `dos probe/finetune
--set model.backbone=spunet head.pretrained=RUN` load it unchanged with either `head.weights`. The projection is
discarded. Loop guarantees are `train_loop`'s: resumable, deterministic per (seed, step), NaN guard, SIGTERM.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch
from torch import nn

from dos.engine.common import DataConfig, ModelConfig, add_run_arguments
from dos.engine.loop import TrainConfig
from dos.errors import DosError
from dos.engine.optim import OptimConfig
from dos.pretrain.views import ViewConfig

LOSSES = ("cosine",)


@dataclass(frozen=True)
class TeacherSourceConfig:
    pretrained: str | None = None   # dos pretrain run folder or its encoder.pt (required)
    weights: str = "teacher"        # teacher (EMA) | student weights of that run
    model: ModelConfig = field(default_factory=ModelConfig)  # the teacher's architecture (as it was pretrained)

    def __post_init__(self) -> None:
        if self.weights not in ("teacher", "student"):
            raise ValueError(f"weights must be teacher or student, got {self.weights!r}")


@dataclass(frozen=True)
class DistillLossConfig:
    kind: str = "cosine"            # 1 - cos(projection(student), teacher) per voxel
    stage: int = 0                  # stage both networks up-cast to; 0 = full resolution (the probe features)
    head_hidden: int = 0            # projection: 0 = linear; > 0 = Linear-GELU-Linear with this hidden width

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise ValueError(f"kind must be one of {LOSSES}, got {self.kind!r}")
        if self.stage < 0 or self.head_hidden < 0:
            raise ValueError(f"stage and head_hidden must be >= 0, got {self.stage}, {self.head_hidden}")


@dataclass(frozen=True)
class DistillRunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    student: ModelConfig = field(default_factory=lambda: ModelConfig(backbone="spunet"))
    teacher: TeacherSourceConfig = field(default_factory=TeacherSourceConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.002, layer_decay=1.0,
                                                                   weight_decay_start=0.05, weight_decay_end=0.05))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10))


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


@dataclass
class DistillBatch:
    coord: torch.Tensor        # [N, 3]
    feat: torch.Tensor         # [N, C]
    grid_coord: torch.Tensor   # [N, 3]
    offset: torch.Tensor       # [B]


def make_sample(config: "DistillRunConfig", sample: dict, generator: torch.Generator) -> DistillBatch:
    """One augmented, grid-sampled random crop of a scan (the crop rule of the pretraining views)."""
    from dos.pretrain.views import make_view, random_crop

    coord, feat = sample["coord"], sample["feat"]
    crop = random_crop(coord, config.views, generator)
    view = make_view(coord[crop], feat[crop], config.views, generator, config.data.coord_in_feat)
    return DistillBatch(coord=view.coord, feat=view.feat, grid_coord=view.grid_coord,
                        offset=torch.tensor([view.coord.shape[0]]))


def collate(samples: list[DistillBatch]) -> DistillBatch:
    return DistillBatch(coord=torch.cat([s.coord for s in samples]), feat=torch.cat([s.feat for s in samples]),
                        grid_coord=torch.cat([s.grid_coord for s in samples]),
                        offset=torch.cumsum(torch.tensor([s.coord.shape[0] for s in samples]), 0))


def projection_head(in_channels: int, out_channels: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(in_channels, out_channels)
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.GELU(), nn.Linear(hidden, out_channels))


class FeatureDistiller(nn.Module):
    """The trainable part: `student` = {"encoder": PTv3Encoder(SPUNet), "head": projection}.

    The frozen teacher is not a submodule: it is neither trained nor written into checkpoint.pt (it is loaded
    again from `teacher.pretrained` when a run resumes); its features are passed to `forward`.
    """

    def __init__(self, encoder: nn.Module, teacher_channels: int, head_hidden: int = 0):
        super().__init__()
        self.student = nn.ModuleDict({"encoder": encoder,
                                      "head": projection_head(encoder.out_channels, teacher_channels, head_hidden)})

    def forward(self, batch: DistillBatch, teacher_out) -> tuple[torch.Tensor, dict[str, float]]:
        from dos.pretrain.matching import same_view_pairs

        s_out = self.student["encoder"](batch.coord, batch.feat, batch.grid_coord, batch.offset)
        num_units = s_out.unit_feat.shape[0]
        points = torch.arange(batch.coord.shape[0], device=batch.coord.device)
        teacher_rows = same_view_pairs(s_out.point_to_unit, points, teacher_out.point_to_unit, num_units)
        prediction = self.student["head"](s_out.unit_feat).float()
        target = teacher_out.unit_feat[teacher_rows].float()
        cosine = nn.functional.cosine_similarity(prediction, target, dim=1, eps=1e-6)
        loss = (1.0 - cosine).mean()
        return loss, {"cosine": float(cosine.detach().mean()), "units": float(num_units)}


def load_teacher(config: DistillRunConfig, in_channels: int) -> nn.Module:
    """The frozen teacher encoder (eval mode, no gradient), up-casting to `loss.stage`."""
    from dos.engine.models import build_backbone
    from dos.engine.weights import encoder_file, load_pretrained_backbone, pretrained_in_channels

    source = config.teacher
    if not source.pretrained:
        raise DosError("teacher.pretrained: the dos pretrain run folder (or encoder.pt) of the teacher is required")
    path = encoder_file(source.pretrained)
    pretrained_channels = pretrained_in_channels(path)
    if pretrained_channels not in (None, in_channels):
        raise DosError(f"{path}: the teacher was pretrained on {pretrained_channels} input channels, this data "
                       f"gives {in_channels} (data.format / data.coord_in_feat differ from its pretraining)")
    backbone = build_backbone(source.model, in_channels, enc_mode=True)
    load_pretrained_backbone(backbone, path, source.weights)
    teacher = _encoder(backbone, config.loss.stage, "teacher.model")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def _encoder(backbone: nn.Module, stage: int, where: str) -> nn.Module:
    from dos.pretrain.encoder import PTv3Encoder

    if stage >= len(backbone.enc_channels):
        raise DosError(f"loss.stage {stage}: {where} has only {len(backbone.enc_channels)} stages")
    return PTv3Encoder(backbone, stage)


def build_distiller(config: DistillRunConfig, in_channels: int, teacher_channels: int) -> FeatureDistiller:
    from dos.engine.models import build_backbone

    backbone = build_backbone(config.student, in_channels, enc_mode=True)
    return FeatureDistiller(_encoder(backbone, config.loss.stage, "student"), teacher_channels,
                            config.loss.head_hidden)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from dos.engine import distributed
    from dos.engine.common import input_hashes
    from dos.engine.models import warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.engine.run import open_training
    from dos.engine.weights import encoder_file, export_encoder

    run = open_training(DistillRunConfig, args, "distill")
    config, device = run.config, run.device
    teacher = load_teacher(config, run.in_channels).to(device)
    model = build_distiller(config, run.in_channels, teacher.out_channels).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    backbone = model.student["encoder"].backbone
    if distributed.is_main():
        warn_if_layer_decay_ignored(backbone, config.optim.layer_decay, "distill")
    optimizer = build_optimizer(model, config.optim, backbone.layer_ids())
    teacher_file = encoder_file(config.teacher.pretrained)
    inputs = input_hashes(config.data, run.dataset, teacher=teacher_file)
    run.record(inputs, {"teacher_weights": str(teacher_file), "teacher_weights_sha256": inputs["teacher"]})
    next_batch = run.step_loader(partial(make_sample, config), collate)
    autocast = device.type == "cuda" and config.train.bf16

    def step_fn(step: int, progress: float):
        batch = next_batch(step)
        lr, wd = apply_schedules(optimizer, config.optim, progress)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            with torch.no_grad():
                teacher_out = teacher(batch.coord, batch.feat, batch.grid_coord, batch.offset)
            loss, stats = model(batch, teacher_out)
        stats.update(backward_and_step(loss, optimizer, trainable, config.optim.grad_clip))
        stats.update(lr=lr, weight_decay=wd)
        return loss, stats

    result = run.loop(model, optimizer, step_fn)
    # no EMA here: the student's weights are exported as both "student" and "teacher"
    run.export(result, ["encoder.pt"], lambda: export_encoder(
        run.out / "encoder.pt", backbone, None, config.student, run.in_channels,
        distilled_from=str(config.teacher.pretrained)))
    return 0
