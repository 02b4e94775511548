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


class _StepBatches(torch.utils.data.Dataset):
    """Batch of step s = the samples at positions [s*B, (s+1)*B) of epoch s // steps_per_epoch's permutation
    (this rank's contiguous share); each sample's randomness is seeded by (seed, epoch, dataset index)."""

    def __init__(self, dataset, config: PretrainRunConfig, steps_per_epoch: int, rank: int, world: int):
        self.dataset, self.config, self.steps_per_epoch = dataset, config, steps_per_epoch
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return 1 << 62

    def indices(self, step: int) -> list[int]:
        from dos.engine.common import seed_from

        epoch, position = divmod(step, self.steps_per_epoch)
        perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(
            seed_from(self.config.seed, epoch, 0x5EED)))
        batch = self.config.train.batch_size
        chosen = perm[position * batch:(position + 1) * batch].tolist()
        share = batch // self.world
        return chosen[self.rank * share:(self.rank + 1) * share]

    def __getitem__(self, step: int):
        from dos.engine.common import seed_from
        from dos.pretrain.batch import collate_pairs, make_view_pair

        cfg = self.config
        epoch = step // self.steps_per_epoch
        pairs = []
        for index in self.indices(step):
            sample = self.dataset[index]
            generator = torch.Generator().manual_seed(seed_from(cfg.seed, epoch, index))
            pairs.append(make_view_pair(sample["coord"], sample["feat"], cfg.views, cfg.masking, generator,
                                        cfg.data.coord_in_feat))
        return step, collate_pairs(pairs, cfg.distill.mode, cfg.views.grid_size, cfg.masking.jitter_sigma)


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
    from dos.engine import distributed
    from dos.engine.common import budget_record, input_channels, input_hashes, open_dataset, start_run, to_device
    from dos.engine.loop import train_loop
    from dos.engine.models import blocks_per_stage, warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.errors import DosError
    from dos.pretrain.diagnostics import collapse_problems
    from dos.utils.io import save_torch

    start = start_run(PretrainRunConfig, args, "pretrain")
    config, out, rank, world, device, timer = (start.config, start.out, start.rank, start.world, start.device,
                                               start.timer)
    dataset = open_dataset(config.data, config.data.train_split)
    in_channels = input_channels(dataset, config.data)
    model = build_pretrainer(config, in_channels).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    backbone = model.student["encoder"].backbone
    if distributed.is_main():
        warn_if_layer_decay_ignored(backbone, config.optim.layer_decay, "pretrain")
    optimizer = build_optimizer(model, config.optim, blocks_per_stage(backbone))
    steps_per_epoch = max(1, len(dataset) // config.train.batch_size)
    total = config.train.max_steps or config.train.epochs * steps_per_epoch
    inputs = input_hashes(config.data, dataset)
    start.record(inputs, {"data_fingerprint": inputs["data"], "world_size": world, "total_steps": total,
                          **budget_record(total, steps_per_epoch, config.train.batch_size, len(dataset))})
    batches = _StepBatches(dataset, config, steps_per_epoch, rank, world)
    loader_state: dict = {}
    autocast = device.type == "cuda" and config.train.bf16
    all_reduce = distributed.all_reduce_sum if world > 1 else None

    def next_batch(step: int):
        if "iterator" not in loader_state:
            # its own generator: creating the iterator must not draw from the global RNG, whose state is
            # part of the checkpoint (an iterator created at the resume step would shift it)
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
        teacher_temp = config.teacher.teacher_temp(progress)
        logged = (step + 1) % config.train.log_every == 0 or step + 1 == total
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
            raise DosError(f"{message}. Stopped (diagnostics.on_collapse=stop); the last checkpoint is kept in {out}")
        print(f"warning: {message}", file=sys.stderr, flush=True)

    result = train_loop(out_dir=out, model=model, optimizer=optimizer, total_steps=total, config=config.train,
                        step_fn=step_fn, label="pretrain", started_at=timer.start, monitor=check_collapse)
    if distributed.is_main() and not start.finished(result, ["encoder.pt"]):
        encoders = {which: getattr(model, which)["encoder"].backbone.state_dict() for which in ("student", "teacher")}
        save_torch(out / "encoder.pt", {**encoders, "model_config": dataclasses.asdict(config.model),
                                        "in_channels": in_channels, "teacher_head": teacher_head(model, config)})
        start.write_summary(result, ["encoder.pt"])
    distributed.shutdown()
    return 0
