"""`dos pretrain CONFIG --out RUN`: DOS self-supervised pretraining (and every Table 5 / 10 / 11 variant, and
Table 12's SPUNet self-distillation with `model.backbone=spunet`: same recipe; layer-wise lr decay is PTv3-only,
and SPUNet's BatchNorm running statistics are copied into the EMA teacher at every update).

Writes into RUN: config.yaml (resolved), provenance.json, history.csv, tensorboard/, checkpoint.pt (resumable,
every `train.checkpoint_every` steps), and at the end encoder.pt (student and EMA-teacher backbone weights, and
under "teacher_head" the teacher's projection head and prototypes) and summary.json. encoder.pt appears only when training is complete: it is what downstream commands read.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field

import torch

from dos.engine.common import DataConfig, ModelConfig, add_run_arguments
from dos.engine.loop import TrainConfig
from dos.engine.optim import OptimConfig
from dos.objectives.targets import TargetConfig
from dos.pretrain.diagnostics import CollapseConfig
from dos.pretrain.masking import MaskingConfig
from dos.pretrain.model import DistillConfig
from dos.pretrain.teacher import TeacherConfig
from dos.pretrain.views import ViewConfig


@dataclass(frozen=True)
class PretrainRunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    objective: TargetConfig = field(default_factory=TargetConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diagnostics: CollapseConfig = field(default_factory=CollapseConfig)


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def make_pair(config: PretrainRunConfig, sample: dict, generator: torch.Generator):
    """One training sample: two augmented, masked views of one crop of the scan, at the input voxel of the
    sample's source (data.sources[k].grid_size) when it has one, else views.grid_size."""
    from dos.pretrain.batch import make_view_pair

    views = config.views
    if sample.get("grid_size") is not None:
        views = dataclasses.replace(views, grid_size=sample["grid_size"])
    return make_view_pair(sample["coord"], sample["feat"], views, config.masking, generator,
                          config.data.coord_in_feat)


def collate(config: PretrainRunConfig, pairs: list):
    from dos.pretrain.batch import collate_pairs

    return collate_pairs(pairs, config.distill.mode, config.masking.jitter_sigma)


def build_pretrainer(config: PretrainRunConfig, in_channels: int):
    from dos.engine.models import build_backbone
    from dos.pretrain.encoder import PTv3Encoder
    from dos.pretrain.model import DOSPretrainer

    # PTv3 or SPUNet (Table 12's "DOS" row: SPUNet self-distilled with the same recipe); both expose the stages
    # PTv3Encoder up-casts, and SPUNet takes the naive/token_jitter mask token at its stem output.
    from dos.errors import DosError

    backbone = build_backbone(config.model, in_channels, enc_mode=True)
    try:
        encoder = PTv3Encoder(backbone, config.model.supervision_stage)
    except ValueError as error:
        raise DosError(f"model.{error} (model config {config.model.config!r})") from None
    return DOSPretrainer(encoder, config.distill, config.objective)


def teacher_head(model, config: PretrainRunConfig) -> dict:
    """The EMA teacher's projection head and prototypes, with what rebuilds them and turns their cosines into
    logits (the objective and the final teacher temperature): `dos visualize prototypes` reads them back."""
    return {"head": model.teacher["head"].state_dict(), "prototypes": model.teacher["prototypes"].state_dict(),
            "head_config": {"in_channels": model.student["encoder"].out_channels,
                            "hidden_channels": config.distill.head_hidden, "out_channels": config.distill.head_dim,
                            "num_prototypes": config.distill.num_prototypes,
                            "supervision_stage": config.model.supervision_stage},
            "objective": dataclasses.asdict(config.objective), "teacher_temp": config.teacher.temp_end}


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from dos.engine import distributed
    from dos.engine.common import input_hashes
    from dos.engine.models import warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.engine.run import open_training
    from dos.engine.weights import export_encoder
    from dos.errors import DosError
    from dos.pretrain.diagnostics import collapse_problems

    run = open_training(PretrainRunConfig, args, "pretrain", source_grids=True)
    config, device = run.config, run.device
    model = build_pretrainer(config, run.in_channels).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    backbone = model.backbone("student")
    if distributed.is_main():
        warn_if_layer_decay_ignored(backbone, config.optim.layer_decay, "pretrain")
    optimizer = build_optimizer(model, config.optim, backbone.layer_ids())
    run.record(input_hashes(config.data, run.dataset))
    next_batch = run.step_loader(partial(make_pair, config), partial(collate, config))
    autocast = device.type == "cuda" and config.train.bf16
    all_reduce = distributed.all_reduce_sum if run.start.world > 1 else None

    def step_fn(step: int, progress: float):
        batch = next_batch(step)
        lr, wd = apply_schedules(optimizer, config.optim, progress)
        teacher_temp = config.teacher.teacher_temp(progress)
        logged = (step + 1) % config.train.log_every == 0 or step + 1 == run.total_steps
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, stats = model(batch, config.teacher.student_temp, teacher_temp, all_reduce=all_reduce,
                                diagnostics=logged)
        stats.update(backward_and_step(loss, optimizer, trainable, config.optim.grad_clip))
        momentum = config.teacher.momentum(progress)
        model.update_teacher(momentum)
        stats.update(lr=lr, weight_decay=wd, teacher_temp=teacher_temp, momentum=momentum)
        return loss, stats

    def check_collapse(row: dict[str, float]) -> None:
        problems = collapse_problems(row, config.diagnostics)
        if not problems:
            return
        message = f"[pretrain] collapse at step {int(row['step'])}: {'; '.join(problems)}"
        if config.diagnostics.on_collapse == "stop":
            raise DosError(f"{message}. Stopped (diagnostics.on_collapse=stop); the last checkpoint is kept in "
                           f"{run.out}")
        print(f"warning: {message}", file=sys.stderr, flush=True)

    result = run.loop(model, optimizer, step_fn, monitor=check_collapse)
    run.export(result, ["encoder.pt"], lambda: export_encoder(
        run.out / "encoder.pt", model.backbone("student"), model.backbone("teacher"), config.model,
        run.in_channels, teacher_head=teacher_head(model, config)))
    return 0
