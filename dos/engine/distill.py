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
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dos.engine.common import DataConfig, ModelConfig, add_run_arguments
from dos.engine.loop import TrainConfig
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


def make_sample(coord: torch.Tensor, feat: torch.Tensor, views: ViewConfig, generator: torch.Generator,
                coord_in_feat: bool) -> DistillBatch:
    """One augmented, grid-sampled random crop (the crop rule of the pretraining views)."""
    from dos.data.transforms import nearest_crop
    from dos.pretrain.views import make_view

    low, high = views.crop_ratio
    ratio = float(torch.rand((), generator=generator, dtype=torch.float64)) * (high - low) + low
    keep = max(1, math.ceil(ratio * coord.shape[0]))
    if views.max_points:
        keep = min(keep, views.max_points)
    crop = nearest_crop(coord, keep, generator)
    view = make_view(coord[crop], feat[crop], views, generator, coord_in_feat)
    return DistillBatch(coord=view.coord, feat=view.feat, grid_coord=view.grid_coord,
                        offset=torch.tensor([view.coord.shape[0]]))


def collate(samples: list[DistillBatch]) -> DistillBatch:
    return DistillBatch(coord=torch.cat([s.coord for s in samples]), feat=torch.cat([s.feat for s in samples]),
                        grid_coord=torch.cat([s.grid_coord for s in samples]),
                        offset=torch.cumsum(torch.tensor([s.coord.shape[0] for s in samples]), 0))


class _StepBatches(torch.utils.data.Dataset):
    """Batch of step s: the samples at [s*B, (s+1)*B) of epoch s // steps_per_epoch's permutation (this rank's
    share), each sample's randomness seeded by (seed, epoch, dataset index): the batch is a function of
    (seed, step), whatever the resume point or the number of loader workers."""

    def __init__(self, dataset, config: DistillRunConfig, steps_per_epoch: int, rank: int, world: int):
        self.dataset, self.config, self.steps_per_epoch = dataset, config, steps_per_epoch
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, step: int) -> tuple[int, DistillBatch]:
        from dos.engine.common import seed_from

        cfg = self.config
        epoch, position = divmod(step, self.steps_per_epoch)
        perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(
            seed_from(cfg.seed, epoch, 0x5EED)))
        batch = cfg.train.batch_size
        chosen = perm[position * batch:(position + 1) * batch].tolist()
        share = batch // self.world
        samples = []
        for index in chosen[self.rank * share:(self.rank + 1) * share]:
            sample = self.dataset[index]
            generator = torch.Generator().manual_seed(seed_from(cfg.seed, epoch, index))
            samples.append(make_sample(sample["coord"], sample["feat"], cfg.views, generator,
                                       cfg.data.coord_in_feat))
        return step, collate(samples)


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


def teacher_weights_file(config: DistillRunConfig) -> Path:
    path = Path(config.teacher.pretrained or "")
    return path / "encoder.pt" if path.is_dir() else path


def load_teacher(config: DistillRunConfig, in_channels: int) -> nn.Module:
    """The frozen teacher encoder (eval mode, no gradient), up-casting to `loss.stage`."""
    from dos.cli import DosError
    from dos.engine.models import build_backbone, load_pretrained_backbone
    from dos.utils.io import load_torch

    source = config.teacher
    if not source.pretrained:
        raise DosError("teacher.pretrained: the dos pretrain run folder (or encoder.pt) of the teacher is required")
    path = teacher_weights_file(config)
    if path.is_file():
        pretrained_channels = load_torch(path, "pretrained encoder").get("in_channels")
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
    from dos.cli import DosError
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
    from dos.engine import distributed
    from dos.engine.common import budget_record, input_channels, input_hashes, open_dataset, start_run, to_device
    from dos.engine.loop import train_loop
    from dos.engine.models import blocks_per_stage, warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.utils.io import save_torch

    start = start_run(DistillRunConfig, args, "distill")
    config, out, rank, world, device, timer = (start.config, start.out, start.rank, start.world, start.device,
                                               start.timer)
    dataset = open_dataset(config.data, config.data.train_split)
    in_channels = input_channels(dataset, config.data)
    teacher = load_teacher(config, in_channels).to(device)
    model = build_distiller(config, in_channels, teacher.out_channels).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    backbone = model.student["encoder"].backbone
    if distributed.is_main():
        warn_if_layer_decay_ignored(backbone, config.optim.layer_decay, "distill")
    optimizer = build_optimizer(model, config.optim, blocks_per_stage(backbone))
    steps_per_epoch = max(1, len(dataset) // config.train.batch_size)
    total = config.train.max_steps or config.train.epochs * steps_per_epoch
    teacher_file = teacher_weights_file(config)
    inputs = input_hashes(config.data, dataset, teacher=teacher_file)
    start.record(inputs, {"data_fingerprint": inputs["data"], "world_size": world, "total_steps": total,
                          "teacher_weights": str(teacher_file), "teacher_weights_sha256": inputs["teacher"],
                          **budget_record(total, steps_per_epoch, config.train.batch_size, len(dataset))})
    batches = _StepBatches(dataset, config, steps_per_epoch, rank, world)
    loader_state: dict = {}
    autocast = device.type == "cuda" and config.train.bf16

    def next_batch(step: int) -> DistillBatch:
        if "iterator" not in loader_state:
            # its own generator: creating the iterator must not draw from the global RNG (checkpointed state)
            loader = torch.utils.data.DataLoader(batches, sampler=range(step, total), batch_size=None,
                                                 num_workers=config.train.num_workers,
                                                 generator=torch.Generator().manual_seed(config.seed))
            loader_state["iterator"] = iter(loader)
        got_step, batch = next(loader_state["iterator"])
        assert got_step == step, (got_step, step)
        return to_device(batch, device)

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

    result = train_loop(out_dir=out, model=model, optimizer=optimizer, total_steps=total, config=config.train,
                        step_fn=step_fn, label="distill", started_at=timer.start)
    if distributed.is_main() and not start.finished(result, ["encoder.pt"]):
        state = backbone.state_dict()
        save_torch(out / "encoder.pt", {"student": state, "teacher": state,  # no EMA: the same weights
                                        "model_config": dataclasses.asdict(config.student),
                                        "in_channels": in_channels, "distilled_from": str(config.teacher.pretrained)})
        start.write_summary(result, ["encoder.pt"])
    distributed.shutdown()
    return 0
