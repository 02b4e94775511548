"""The skeleton every training command shares: start -> records -> loop -> export -> summary.

    run = open_training(MyRunConfig, args, "mycommand")        # config, --out folder, ranks, seed, device, data
    model = ...; optimizer = build_optimizer(model, run.config.optim, backbone.layer_ids())
    run.record(input_hashes(run.config.data, run.dataset, pretrained=...))   # claims the folder, writes records
    loader = run.step_loader(make_sample, collate)             # batch of step s = f(seed, s), with workers
    result = run.loop(model, optimizer, step_fn)               # resume, checkpoints, NaN guard, history
    run.export(result, ["model.pt"], lambda: save_torch(run.out / "model.pt", ...))   # + summary.json

A command supplies its config schema, its model, its per-sample function and its step; the rest is here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dos.engine import distributed
from dos.engine.common import RunStart, budget_record, input_channels, open_dataset, start_run
from dos.engine.loop import LoopResult, train_loop
from dos.engine.steps import StepBatches, StepLoader
from dos.errors import DosError


@dataclass
class TrainingRun:
    start: RunStart
    command: str
    dataset: Any            # the training split (with the config's scene / annotation subsets)
    in_channels: int        # network input width on this data
    steps_per_epoch: int
    total_steps: int

    @property
    def config(self) -> Any:
        return self.start.config

    @property
    def out(self) -> Path:
        return self.start.out

    @property
    def device(self) -> torch.device:
        return self.start.device

    def record(self, inputs: dict[str, str], extra: dict[str, Any] | None = None, budget: bool = True) -> None:
        """Claim the run folder for this identity (config + input hashes) and write config.yaml and
        provenance.json, with the training budget (`budget=False`: the command takes no train.* steps)."""
        spent = ({"total_steps": self.total_steps,
                  **budget_record(self.total_steps, self.steps_per_epoch, self.config.train.batch_size,
                                  len(self.dataset))}
                 if budget else {"total_steps": 0, "train_scenes": len(self.dataset)})
        self.start.record(inputs, {"data_fingerprint": inputs["data"], "world_size": self.start.world, **spent,
                                   **(extra or {})})

    def step_loader(self, make_sample: Callable[[dict, torch.Generator], Any],
                    collate: Callable[[list], Any]) -> StepLoader:
        """Batches of the training split by step (dos/engine/steps.py), loaded by `train.num_workers` processes."""
        batches = StepBatches(self.dataset, self.config.seed, self.config.train.batch_size, self.steps_per_epoch,
                              make_sample, collate, self.start.rank, self.start.world)
        return StepLoader(batches, self.total_steps, self.config.train.num_workers, self.device)

    def loop(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step_fn: Callable,
             monitor: Callable[[dict[str, float]], None] | None = None) -> LoopResult:
        return train_loop(out_dir=self.out, model=model, optimizer=optimizer, total_steps=self.total_steps,
                          config=self.config.train, step_fn=step_fn, label=self.command,
                          started_at=self.start.timer.start, monitor=monitor)

    def export(self, result: LoopResult, outputs: list[str], write: Callable[[], dict[str, Any] | None]) -> None:
        """On the main process, unless the run was already complete: `write()` writes `outputs` (and returns
        extra summary fields, or None), then summary.json records their hashes. Then leave the process group."""
        if distributed.is_main() and not self.start.finished(result, outputs):
            extra = write()
            self.start.write_summary(result, outputs, extra)
        distributed.shutdown()


def open_training(schema: type, args: argparse.Namespace, command: str, source_grids: bool = False) -> TrainingRun:
    """Validate the config and --out (before any write), set up ranks, seed and device, open the training
    split, and size the schedule: `train.max_steps`, or `train.epochs` x steps per epoch. `source_grids`: the
    command reads each sample's `grid_size` (data.sources[k].grid_size); others refuse a config that sets one."""
    start = start_run(schema, args, command)
    config = start.config
    fixed = [k for k, source in enumerate(config.data.sources) if source.grid_size is not None]
    if fixed and not source_grids:
        raise DosError(f"{args.config}: data.sources[{fixed[0]}].grid_size: dos {command} samples every source at "
                       "one input voxel; leave the sources' grid_size null")
    dataset = open_dataset(config.data, config.data.train_split)
    steps_per_epoch = max(1, len(dataset) // config.train.batch_size)
    total = config.train.max_steps or config.train.epochs * steps_per_epoch
    return TrainingRun(start=start, command=command, dataset=dataset,
                       in_channels=input_channels(dataset, config.data), steps_per_epoch=steps_per_epoch,
                       total_steps=total)
