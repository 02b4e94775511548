"""`dos probe` and `dos finetune`: semantic segmentation on top of a (pretrained) backbone, then evaluation.

- probe: the encoder is frozen (eval mode, no gradient); every encoder stage is up-cast to full resolution and
  concatenated (Sonata's linear probing: 1232 channels for the paper model); one linear layer is trained.
  `head.cache_features: true` computes the frozen features once per training scene (no augmentation), which
  makes probing a CPU-cheap logistic regression; the paper protocol (false) recomputes them on augmented views.
- finetune: encoder + decoder + linear layer all train (layer-wise lr decay on the encoder); `head.pretrained:
  null` is the supervised-from-scratch baseline.
Training batches are functions of (seed, step), so runs are deterministic and resumable like pretraining.
After training, the validation split is evaluated with the standard protocol (dos/engine/inference.py) and
metrics.json is written (whole-split confusion matrix; mIoU, mAcc, allAcc, per-class IoU, group mIoU).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch
from torch import nn

from dos.data.transforms import PhotometricAugment, SpatialAugment
from dos.engine.common import DataConfig, ModelConfig
from dos.engine.loop import TrainConfig
from dos.engine.optim import OptimConfig
from dos.config.ranges import check_ranges

MODES = ("probe", "finetune")
SOLVERS = ("sgd", "lbfgs")


@dataclass(frozen=True)
class HeadConfig:
    pretrained: str | None = None   # dos pretrain run folder or encoder.pt; None = random initialisation
    weights: str = "teacher"        # teacher (EMA) | student
    grid_size: float = 0.05         # input voxel (m)
    cache_features: bool = False    # probe only: frozen features computed once per scene, without augmentation
    solver: str = "sgd"             # probe only: sgd (train.* steps of optim.*) | lbfgs (solved to convergence)
    l2: float = 1.0e-4              # lbfgs: weight of l2/2 |W|^2 on the standardised features
    max_iter: int = 1000            # lbfgs: iteration cap (a run that hits it is recorded as not converged)
    tolerance: float = 1.0e-4       # lbfgs: converged when every gradient entry is below this

    def __post_init__(self) -> None:
        if self.weights not in ("teacher", "student"):
            raise ValueError(f"weights must be teacher or student, got {self.weights!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.solver == "lbfgs" and not self.cache_features:
            raise ValueError("solver lbfgs fits cached features: set cache_features: true")
        check_ranges(self, positive=("grid_size", "max_iter", "tolerance"), nonnegative=("l2",))


@dataclass(frozen=True)
class EvalConfig:
    fragments: bool = False         # predict every grid fragment and vote (covers every point)
    tta: bool = False               # test-time augmentation (rotations x scales x flips) with voting
    max_points_per_call: int = 0    # pack point sets up to this size per network call; 0 = one at a time

    def __post_init__(self) -> None:
        check_ranges(self, nonnegative=("max_points_per_call",))


@dataclass(frozen=True)
class SegmentationRunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    augment: SpatialAugment = field(default_factory=SpatialAugment)
    photometric: PhotometricAugment = field(default_factory=PhotometricAugment)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.002, layer_decay=1.0,
                                                                   weight_decay_start=0.02, weight_decay_end=0.02))
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class SegmentationModel(nn.Module):
    """Backbone (PTv3 or SPUNet) + linear classifier. probe: up-cast encoder stages (width: the sum of
    `backbone.enc_channels`); finetune: decoder output (width: `backbone.out_channels`, i.e. PTv3's
    dec_channels[0] or SPUNet's last decoder width)."""

    def __init__(self, backbone: nn.Module, num_classes: int, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "finetune" and getattr(backbone, "enc_mode", False):
            raise ValueError("finetune needs a backbone with its decoder (enc_mode=False)")
        self.backbone, self.mode = backbone, mode
        channels = sum(backbone.enc_channels) if mode == "probe" else backbone.out_channels
        self.classifier = nn.Linear(channels, num_classes)
        if mode == "probe":
            for p in backbone.parameters():
                p.requires_grad_(False)
        self.train()  # a frozen backbone is in eval mode from the start (also while caching features)

    def train(self, mode: bool = True) -> "SegmentationModel":
        super().train(mode)
        if self.mode == "probe":
            # frozen: no drop-path or order shuffling noise (PTv3), and BatchNorm (SPUNet) normalises with
            # its pretrained running statistics instead of batch statistics and never updates them
            self.backbone.eval()
        return self

    def features(self, coord, feat, grid_coord, offset) -> torch.Tensor:
        from dos.models.point import Point
        from dos.models.backbone import upcast

        point = Point(coord=coord, feat=feat, grid_coord=grid_coord, offset=offset)
        if self.mode == "probe":
            with torch.no_grad():
                return upcast(self.backbone(point).stages, 0)
        return self.backbone(point).decoded.feat

    def forward(self, coord, feat, grid_coord, offset) -> torch.Tensor:
        return self.classifier(self.features(coord, feat, grid_coord, offset))


def network_input(coord: torch.Tensor, feat: torch.Tensor, coord_in_feat: bool) -> torch.Tensor:
    return torch.cat([coord, feat], dim=1).float() if coord_in_feat else feat.float()


def _train_sample(config: SegmentationRunConfig, sample: dict, generator: torch.Generator):
    """One training sample: the augmented scan, grid-sampled, with its labels."""
    from dos.data.transforms import grid_sample

    coord = config.augment(sample["coord"], generator)
    kept = grid_sample(coord, config.head.grid_size, generator)
    feat = config.photometric(sample["feat"][kept.index], generator)
    return (coord[kept.index], network_input(coord[kept.index], feat, config.data.coord_in_feat),
            kept.grid_coord, sample["segment"][kept.index])


def _collate(parts):
    coords, feats, grids, labels = zip(*parts)
    offset = torch.cumsum(torch.tensor([c.shape[0] for c in coords]), 0)
    return torch.cat(coords), torch.cat(feats), torch.cat(grids), offset, torch.cat(labels)


def _cached_features(model: SegmentationModel, dataset, config: SegmentationRunConfig):
    from dos.data.transforms import grid_sample

    cache = []
    for i in range(len(dataset)):
        sample = dataset[i]
        kept = grid_sample(sample["coord"], config.head.grid_size)
        coord = sample["coord"][kept.index]
        feat = network_input(coord, sample["feat"][kept.index], config.data.coord_in_feat)
        offset = torch.tensor([coord.shape[0]])
        cache.append((model.features(coord, feat, kept.grid_coord, offset), sample["segment"][kept.index]))
    return cache


def scene_probabilities(model: SegmentationModel, sample: dict, config: SegmentationRunConfig,
                        device: torch.device) -> torch.Tensor:
    """Summed class probabilities [N, num_classes] of every point of one scene, with the evaluation protocol of
    `config.eval` (what `evaluate_model` scores, and what `dos visualize predictions` draws)."""
    from dos.engine.inference import IDENTITY, default_tta, predict_points

    augmentations = default_tta() if config.eval.tta else (IDENTITY,)

    def predict_fn(coord, feat, grid_coord, offset):
        inputs = network_input(coord, feat, config.data.coord_in_feat)
        return model(coord.to(device), inputs.to(device), grid_coord.to(device), offset.to(device)).float().cpu()

    with torch.no_grad():
        return predict_points(predict_fn, sample["coord"], sample["feat"], config.head.grid_size,
                              num_classes=model.classifier.out_features, fragments=config.eval.fragments,
                              augmentations=augmentations,
                              max_points_per_call=config.eval.max_points_per_call or None)


def evaluate_model(model: SegmentationModel, dataset, config: SegmentationRunConfig,
                   device: torch.device) -> dict:
    """Whole-split metrics with the evaluation protocol of `config.eval`."""
    from dos.engine.metrics import ConfusionMatrix

    model.eval()
    confusion = ConfusionMatrix(dataset.num_classes, dataset.ignore_index)
    for i in range(len(dataset)):
        sample = dataset[i]
        if "segment" not in sample:
            raise ValueError(f"{dataset.scan_ids[i]}: no labels in the evaluation split")
        probs = scene_probabilities(model, sample, config, device)
        confusion.update(probs.argmax(1), sample["segment"])
    confusion.all_reduce()
    metrics = confusion.compute(dataset.class_names, dataset.groups or None)
    metrics["num_scenes"] = len(dataset)
    return metrics


def build_model(config: SegmentationRunConfig, mode: str, in_channels: int, num_classes: int) -> SegmentationModel:
    from dos.engine.models import build_backbone
    from dos.engine.weights import load_pretrained_backbone

    backbone = build_backbone(config.model, in_channels, enc_mode=(mode == "probe"))
    if config.head.pretrained:
        load_pretrained_backbone(backbone, config.head.pretrained, config.head.weights)
    return SegmentationModel(backbone, num_classes, mode)


def open_split(config: SegmentationRunConfig, split: str, labelled_subset: bool):
    from dos.engine.common import open_dataset

    return open_dataset(config.data, split, labelled_subset)


def _write_outputs(run, model: SegmentationModel, result, mode: str, extra_metrics: dict | None = None) -> None:
    """Evaluate the validation split, then write model.pt and metrics.json."""
    from dos.engine.common import peak_memory_bytes
    from dos.utils.io import save_torch, write_json

    config, out, device = run.config, run.out, run.device
    num_classes = run.dataset.num_classes
    val_set = open_split(config, config.data.val_split, labelled_subset=False)
    metrics = evaluate_model(model, val_set, config, device)
    save_torch(out / "model.pt", {"state_dict": model.state_dict(), "mode": mode, "in_channels": run.in_channels,
                                  "num_classes": num_classes})
    metrics.update(split=config.data.val_split, mode=mode,
                   wall_seconds=result.wall_seconds(run.start.timer.seconds()),
                   peak_memory_bytes=result.peak_memory(peak_memory_bytes(device)), seed=config.seed,
                   **(extra_metrics or {}))
    write_json(out / "metrics.json", metrics)
    print(f"[{mode}] {config.data.val_split}: mIoU {100 * metrics['miou']:.2f}  mAcc {100 * metrics['macc']:.2f}"
          f"  allAcc {100 * metrics['allacc']:.2f}  -> {out / 'metrics.json'}", flush=True)


OUTPUTS = ["model.pt", "metrics.json"]


def _solve_probe(run, model: SegmentationModel, cache) -> int:
    """head.solver lbfgs: the linear layer solved to convergence on every training scene's cached features
    (dos/engine/linear_probe.py), in one process; then the same evaluation and records as the stepped probe."""
    from dos.engine.linear_probe import fit_linear_probe
    from dos.engine.loop import LoopResult

    config, train_set = run.config, run.dataset
    features = torch.cat([f for f, _ in cache]).cpu()
    labels = torch.cat([y for _, y in cache]).cpu()
    fit = fit_linear_probe(features, labels, train_set.num_classes, l2=config.head.l2,
                           max_iter=config.head.max_iter, tolerance=config.head.tolerance,
                           ignore_index=train_set.ignore_index)
    del features, labels, cache
    state = "converged" if fit.converged else f"NOT converged (max_iter {config.head.max_iter} reached)"
    print(f"[probe] lbfgs: {fit.iterations} iterations, {fit.evaluations} evaluations on {fit.points} points, "
          f"loss {fit.loss:.6f}, max |grad| {fit.grad_max:.2e}: {state}", flush=True)
    with torch.no_grad():
        model.classifier.weight.copy_(fit.weight)
        model.classifier.bias.copy_(fit.bias)
    result = LoopResult(start_step=0, steps_done=fit.iterations, prior_seconds=0.0, prior_peak_memory=0)
    run.export(result, OUTPUTS, lambda: _write_outputs(run, model, result, "probe", {"probe_fit": fit.record()}))
    return 0


def run_segmentation(args: argparse.Namespace, mode: str) -> int:
    from functools import partial

    from dos.engine import distributed
    from dos.errors import DosError
    from dos.engine.common import input_hashes
    from dos.engine.loop import LoopResult
    from dos.engine.models import warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.engine.run import open_training
    from dos.engine.steps import batch_indices, dataset_sizes

    run = open_training(SegmentationRunConfig, args, mode)
    config, device = run.config, run.device
    solved = config.head.solver == "lbfgs"
    if solved and mode != "probe":
        raise DosError(f"{args.config}: head.solver lbfgs is a probe option; {mode} trains with solver sgd")
    if solved and run.start.world > 1:
        raise DosError("head.solver lbfgs is one full-batch solve in one process; launch dos probe without torchrun")
    train_set = run.dataset
    model = build_model(config, mode, run.in_channels, train_set.num_classes).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if mode == "finetune" and distributed.is_main():
        warn_if_layer_decay_ignored(model.backbone, config.optim.layer_decay, mode)
    optimizer = build_optimizer(model, config.optim, model.backbone.layer_ids() if mode == "finetune" else None)
    # a solved probe takes no train.* steps: its record says so (its iterations go to metrics.json / summary.json)
    run.record(input_hashes(config.data, train_set, pretrained=config.head.pretrained),
               {"mode": mode, "solver": config.head.solver}, budget=not solved)
    if solved and run.start.resumed and run.start.finished(LoopResult(0, 0, 0.0, 0), OUTPUTS):
        return 0
    cache = _cached_features(model.to(device), train_set, config) if (mode == "probe" and
                                                                      config.head.cache_features) else None
    if solved:
        return _solve_probe(run, model, cache)
    loss_fn = nn.CrossEntropyLoss(ignore_index=train_set.ignore_index)
    autocast = device.type == "cuda" and config.train.bf16
    next_batch = run.step_loader(partial(_train_sample, config), _collate)

    def step_fn(step: int, progress: float):
        lr, wd = apply_schedules(optimizer, config.optim, progress)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if cache is not None:
                indices = batch_indices(config.seed, step, run.steps_per_epoch, config.train.batch_size,
                                        dataset_sizes(train_set), run.start.rank, run.start.world,
                                        getattr(train_set, "weights", None))
                features = torch.cat([cache[i][0] for i in indices]).to(device)
                labels = torch.cat([cache[i][1] for i in indices]).to(device)
                logits = model.classifier(features)
            else:
                coord, feat, grid, offset, labels = next_batch(step)
                logits = model(coord, feat, grid, offset)
            loss = loss_fn(logits.float(), labels)
        stats = backward_and_step(loss, optimizer, trainable, config.optim.grad_clip)
        return loss, {"lr": lr, "weight_decay": wd, **stats}

    result = run.loop(model, optimizer, step_fn)
    run.export(result, OUTPUTS, lambda: _write_outputs(run, model, result, mode))
    return 0
