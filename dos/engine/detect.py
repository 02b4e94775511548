"""`dos detect CONFIG --out RUN`: CenterPoint 3D object detection on a (pretrained) backbone (Table 2).

The backbone (PTv3 or SPUNet, encoder only) sees the grid-sampled scan; its stages from `head.feature_stage`
on are up-cast to that stage's voxels and concatenated (as the linear probe does at stage 0), scattered into a
bird's-eye-view image and read by CenterPoint (dos/detection/). Everything trains (the backbone starts from
`head.pretrained`, or from scratch when null). Points and boxes are augmented together (one SpatialAugment draw).
`data.scenes` restricts the labelled training frames (the 20 % setting: a `dos data subsets` scene list).

After training, every validation scan is detected and scored with the nuScenes detection metrics
(dos/detection/metrics.py: mAP, the TP errors, NDS; boxes in the sensor frame, the ego at its origin).
Writes model.pt, predictions.json (nuScenes results format) and metrics.json (`nds`, `map`, the devkit's
per-class APs and TP errors) besides the records every training command writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from dos.data.transforms import PhotometricAugment, SpatialAugment
from dos.detection.config import CenterPointConfig
from dos.engine.common import DataConfig, ModelConfig, add_run_arguments
from dos.engine.loop import TrainConfig
from dos.engine.optim import OptimConfig
from dos.config.ranges import check_ranges


@dataclass(frozen=True)
class DetectHeadConfig:
    pretrained: str | None = None   # dos pretrain run folder or encoder.pt; None = from scratch
    weights: str = "teacher"        # teacher (EMA) | student
    grid_size: float = 0.1          # input voxel (m)
    feature_stage: int = 0          # stage whose voxels carry the BEV features (stages >= it, up-cast)
    min_points: int = 1             # train on boxes with at least this many LiDAR points (nuScenes' valid flag)

    def __post_init__(self) -> None:
        if self.weights not in ("teacher", "student"):
            raise ValueError(f"weights must be teacher or student, got {self.weights!r}")
        check_ranges(self, positive=("grid_size",), nonnegative=("feature_stage", "min_points"))


@dataclass(frozen=True)
class DetectRunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: DetectHeadConfig = field(default_factory=DetectHeadConfig)
    detector: CenterPointConfig = field(default_factory=CenterPointConfig)
    augment: SpatialAugment = field(default_factory=lambda: SpatialAugment(
        rotate=math.pi / 4, scale=(0.95, 1.05), flip=0.5, jitter_sigma=0.0))
    photometric: PhotometricAugment = field(default_factory=PhotometricAugment)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=0.001, layer_decay=1.0, weight_decay_start=0.01, weight_decay_end=0.01, warmup=0.1, grad_clip=35.0))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, batch_size=16))


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


class DetectionModel(nn.Module):
    """Backbone (encoder) + CenterPoint on the up-cast features of `feature_stage`'s voxels."""

    def __init__(self, backbone: nn.Module, detector: CenterPointConfig, feature_stage: int):
        from dos.detection.centerpoint import CenterPoint

        super().__init__()
        if feature_stage >= len(backbone.enc_channels):
            raise ValueError(f"head.feature_stage {feature_stage}: the backbone has "
                             f"{len(backbone.enc_channels)} stages")
        self.backbone, self.feature_stage = backbone, feature_stage
        width = sum(backbone.enc_channels[feature_stage:])
        if detector.in_channels not in (0, width):
            raise ValueError(f"detector.in_channels {detector.in_channels}: the backbone's up-cast features of "
                             f"stage {feature_stage} have {width} channels (leave it 0)")
        self.detector = CenterPoint(dataclasses.replace(detector, in_channels=width))

    def forward(self, coord, feat, grid_coord, offset) -> list[dict[str, torch.Tensor]]:
        from dos.models.backbone import upcast
        from dos.models.point import Point

        stages = self.backbone(Point(coord=coord, feat=feat, grid_coord=grid_coord, offset=offset)).stages
        voxels = stages[self.feature_stage]
        return self.detector(upcast(stages, self.feature_stage), voxels.coord, voxels.offset)


def _boxes(sample: dict, where: str):
    if "boxes" not in sample:
        raise ValueError(f"{where}: the scan has no 3D boxes (a detection dataset needs them: see "
                         "`dos data summary`)")
    return sample["boxes"]


def train_sample(config: DetectRunConfig, sample: dict, generator: torch.Generator):
    """One training sample: the augmented, grid-sampled scan and its boxes (moved with the points; boxes with
    fewer than `head.min_points` points dropped)."""
    from dos.data.transforms import grid_sample
    from dos.detection.augment import transform_boxes
    from dos.engine.segmentation import network_input

    boxes = _boxes(sample, str(sample.get("name")))
    boxes = boxes.select((boxes.num_points < 0) | (boxes.num_points >= config.head.min_points))
    draw = config.augment.draw(generator)
    coord = config.augment(sample["coord"], generator, draw)
    kept = grid_sample(coord, config.head.grid_size, generator)
    feat = config.photometric(sample["feat"][kept.index], generator)
    return (coord[kept.index], network_input(coord[kept.index], feat, config.data.coord_in_feat), kept.grid_coord,
            transform_boxes(boxes, draw))


def collate(samples: list) -> tuple:
    coords, feats, grids, boxes = zip(*samples)
    offset = torch.cumsum(torch.tensor([c.shape[0] for c in coords]), 0)
    return torch.cat(coords), torch.cat(feats), torch.cat(grids), offset, list(boxes)


def detect_split(model: DetectionModel, dataset, config: DetectRunConfig, device: torch.device
                 ) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(ground truth, predictions) of every scan of `dataset`, in nuScenes results format (sensor frame)."""
    from dos.data.transforms import grid_sample
    from dos.detection.results_format import boxes_to_results
    from dos.engine.segmentation import network_input

    model.eval()
    truth, predictions = {}, {}
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            token = str(sample["name"])
            truth[token] = boxes_to_results(_boxes(sample, f"{dataset.reader.root}: {token}"), token)
            kept = grid_sample(sample["coord"], config.head.grid_size)
            coord = sample["coord"][kept.index]
            feat = network_input(coord, sample["feat"][kept.index], config.data.coord_in_feat)
            offset = torch.tensor([coord.shape[0]])
            outputs = model(coord.to(device), feat.to(device), kept.grid_coord.to(device), offset.to(device))
            boxes, scores = model.detector.predict(outputs)[0]
            predictions[token] = boxes_to_results(boxes, token, scores)
    return truth, predictions


def evaluate_detection(model: DetectionModel, dataset, config: DetectRunConfig, device: torch.device
                       ) -> tuple[dict, dict[str, list[dict]]]:
    """nuScenes detection metrics of `model` on `dataset` (plus `nds` and `map` for the tables), and the
    predictions."""
    from dos.detection.metrics import evaluate

    truth, predictions = detect_split(model, dataset, config, device)
    metrics = evaluate(truth, predictions)
    metrics.update(nds=metrics["nd_score"], map=metrics["mean_ap"], num_scenes=len(dataset),
                   num_gt_boxes=sum(len(v) for v in truth.values()),
                   num_predictions=sum(len(v) for v in predictions.values()))
    return metrics, predictions


OUTPUTS = ["model.pt", "predictions.json", "metrics.json"]


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from dos.engine.common import input_hashes, open_dataset, peak_memory_bytes
    from dos.engine.models import build_backbone, warn_if_layer_decay_ignored
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer
    from dos.engine.run import open_training
    from dos.engine.weights import load_pretrained_backbone
    from dos.errors import DosError
    from dos.utils.io import save_torch, write_json

    run = open_training(DetectRunConfig, args, "detect")
    config, device = run.config, run.device
    backbone = build_backbone(config.model, run.in_channels, enc_mode=True)
    if config.head.pretrained:
        load_pretrained_backbone(backbone, config.head.pretrained, config.head.weights)
    try:
        model = DetectionModel(backbone, config.detector, config.head.feature_stage).to(device)
    except ValueError as error:
        raise DosError(f"{args.config}: {error}") from None
    warn_if_layer_decay_ignored(backbone, config.optim.layer_decay, "detect")
    optimizer = build_optimizer(model, config.optim, backbone.layer_ids())
    trainable = [p for p in model.parameters() if p.requires_grad]
    run.record(input_hashes(config.data, run.dataset, pretrained=config.head.pretrained))
    next_batch = run.step_loader(partial(train_sample, config), collate)
    autocast = device.type == "cuda" and config.train.bf16

    def step_fn(step: int, progress: float):
        lr, wd = apply_schedules(optimizer, config.optim, progress)
        coord, feat, grid, offset, boxes = next_batch(step)
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            outputs = model(coord, feat, grid, offset)
        losses = model.detector.loss([{k: v.float() for k, v in task.items()} for task in outputs], boxes)
        stats = backward_and_step(losses["loss"], optimizer, trainable, config.optim.grad_clip)
        return losses["loss"], {"lr": lr, "weight_decay": wd, "heatmap": losses["heatmap"].detach(),
                                "regression": losses["regression"].detach(), **stats}

    result = run.loop(model, optimizer, step_fn)

    def write() -> None:
        val_set = open_dataset(config.data, config.data.val_split, labelled_subset=False)
        metrics, predictions = evaluate_detection(model, val_set, config, device)
        save_torch(run.out / "model.pt", {"state_dict": model.state_dict(), "in_channels": run.in_channels})
        write_json(run.out / "predictions.json", {"meta": {"use_lidar": True, "frame": "sensor"},
                                                  "results": predictions})
        metrics.update(split=config.data.val_split, seed=config.seed,
                       wall_seconds=result.wall_seconds(run.start.timer.seconds()),
                       peak_memory_bytes=result.peak_memory(peak_memory_bytes(device)))
        write_json(run.out / "metrics.json", metrics)
        print(f"[detect] {config.data.val_split}: NDS {100 * metrics['nds']:.2f}  mAP {100 * metrics['map']:.2f}"
              f"  ({metrics['num_predictions']} boxes for {metrics['num_gt_boxes']} GT) -> "
              f"{run.out / 'metrics.json'}", flush=True)

    run.export(result, OUTPUTS, write)
    return 0
