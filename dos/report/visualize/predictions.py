"""`dos visualize predictions RUN [--scene ID] [--set KEY=VALUE] --out PNG [--ply PLY]`: a probe / finetune run's
predictions on one scene (the run's evaluation protocol) against the ground truth: ground truth | prediction |
errors (wrong points red, drawn on top). `--set data.*` draws another dataset with the same classes
(zero-shot transfer, as `dos evaluate --set`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dos.errors import DosError
from dos.report.visualize.render import Panel


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a finished dos probe / finetune run folder (config.yaml, model.pt)")
    add_prediction_arguments(parser)
    parser.add_argument("--ply", default=None, help="also write the predicted classes' colours as PLY")
    parser.add_argument("--ascii", action="store_true", help="ascii PLY instead of binary little-endian")


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    from dos.report.visualize.scene import add_output_arguments

    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the run's config, e.g. --set data.root=... --set data.format=... (another "
                             "dataset with the same classes; repeatable)")
    parser.add_argument("--split", default=None, help="split of the scene (default: the config's data.val_split)")
    parser.add_argument("--scene", default=None, help="scan id (default: the split's first scene)")
    parser.add_argument("--out", required=True, help="output .png (or .svg)")
    add_output_arguments(parser)


@dataclass
class Prediction:
    label: str
    classes: np.ndarray   # [N] predicted class per point


def scene_scores(truth: np.ndarray, predicted: np.ndarray, names: Sequence[str], ignore_index: int) -> dict:
    """This scene's mIoU / allAcc (the evaluation's ConfusionMatrix, on one scene)."""
    import torch

    from dos.engine.metrics import ConfusionMatrix

    confusion = ConfusionMatrix(len(names), ignore_index)
    confusion.update(torch.from_numpy(predicted), torch.from_numpy(truth))
    return confusion.compute(list(names))


def prediction_panels(truth: np.ndarray, predictions: Sequence[Prediction], names: Sequence[str],
                      ignore_index: int = -1, errors: bool = True) -> list[Panel]:
    """ground truth | each prediction | (each prediction's errors: exactly the labelled points predicted wrong
    are red, and drawn on top). The ground truth's legend lists every class present in any panel."""
    from dos.report.visualize.colors import CORRECT, IGNORED, WRONG, error_colors, error_mask
    from dos.report.visualize.render import class_panel

    truth = np.asarray(truth)
    every = np.concatenate([truth, *[p.classes for p in predictions]])
    panels = [class_panel(truth, names, "ground truth", legend_labels=every)]
    labelled = int(((truth != ignore_index) & (truth >= 0)).sum())
    for p in predictions:
        scores = scene_scores(truth, p.classes, names, ignore_index)
        panels.append(class_panel(p.classes, names, f"{p.label}: prediction\nscene mIoU {100 * scores['miou']:.1f}, "
                                  f"allAcc {100 * scores['allacc']:.1f}", legend_labels=np.zeros(0, dtype=int)))
    if errors:
        for p in predictions:
            wrong = error_mask(truth, p.classes, ignore_index)
            panels.append(Panel(f"{p.label}: errors\n{int(wrong.sum())} of {labelled} labelled points wrong",
                                error_colors(truth, p.classes, ignore_index), on_top=wrong, legend_columns=3,
                                legend=[("wrong", WRONG), ("right", CORRECT), ("unlabelled", IGNORED)]))
    return panels


def predict_runs(runs: Sequence[tuple[str, str]], overrides: list[str], split: str | None, scene: str | None
                 ) -> tuple[dict, object, list[Prediction]]:
    """(the scene's sample, its dataset, each run's Prediction): every run is loaded with the same overrides
    and predicts the same scene of the first run's (overridden) data config."""
    from dos.engine.evaluate import load_trained_run
    from dos.report.visualize.features import predicted_labels
    from dos.report.visualize.scene import open_scene

    sample = dataset = None
    predictions = []
    for label, run in runs:
        _, config, model, saved = load_trained_run(Path(run), overrides)
        if sample is None:
            dataset, sample = open_scene(config.data, split, scene)
            if "segment" not in sample:
                raise DosError(f"{config.data.root}: split {dataset.split!r} has no labels to compare with")
        if saved["num_classes"] != dataset.num_classes:
            raise DosError(f"{run}: the model predicts {saved['num_classes']} classes, {config.data.root} has "
                           f"{dataset.num_classes}: draw a dataset with the run's classes")
        predictions.append(Prediction(label, predicted_labels(model, config, sample)))
    return sample, dataset, predictions


def run(args: argparse.Namespace) -> int:
    from dos.report.visualize.ply import write_ply
    from dos.report.visualize.render import scene_figure
    from dos.report.visualize.scene import setup

    setup(args.threads)
    sample, dataset, predictions = predict_runs([("model", args.run)], args.overrides, args.split, args.scene)
    truth = sample["segment"].numpy()
    panels = prediction_panels(truth, predictions, dataset.class_names, dataset.ignore_index)
    xyz = sample["coord"].numpy()
    title = f"{sample['name']} ({dataset.split} of {dataset.reader.root}): predictions of {args.run}"
    print(scene_figure(xyz, panels, args.out, title))
    if args.ply:
        print(write_ply(args.ply, xyz, panels[1].colors, binary=not args.ascii))
    return 0
