"""`dos visualize figure5 --runs LABEL=RUN ... --set data.format=... --set data.root=... --out PNG`: the paper's
Figure 5: ground truth and the predictions of several fine-tuned runs (the paper: supervised and DOS, fine-tuned
on SemanticKITTI) on one scene of an unseen domain (ParisLuco3D), zero-shot, with each run's errors."""

from __future__ import annotations

import argparse

from dos.errors import DosError
from dos.report.visualize.predictions import add_prediction_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="LABEL=RUN",
                        help="finished finetune runs, e.g. supervised=runs/.../scratch/seed0 'DOS=runs/.../dos/seed0'")
    add_prediction_arguments(parser)
    parser.add_argument("--title", default="Figure 5: zero-shot transfer to an unseen domain")


def labelled_paths(items: list[str], option: str) -> list[tuple[str, str]]:
    """LABEL=PATH items as (label, path) pairs."""
    pairs = []
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise DosError(f"{option} {item!r}: expected LABEL=PATH")
        pairs.append((label, path))
    return pairs


def run(args: argparse.Namespace) -> int:
    from dos.report.visualize.predictions import predict_runs, prediction_panels
    from dos.report.visualize.render import scene_figure
    from dos.report.visualize.scene import setup

    setup(args.threads)
    runs = labelled_paths(args.runs, "--runs")
    sample, dataset, predictions = predict_runs(runs, args.overrides, args.split, args.scene)
    panels = prediction_panels(sample["segment"].numpy(), predictions, dataset.class_names, dataset.ignore_index)
    note = (f"scene {sample['name']} ({dataset.split} split of {dataset.reader.root}); models: "
            + "; ".join(f"{label} = {path}" for label, path in runs))
    print(scene_figure(sample["coord"].numpy(), panels, args.out, args.title, views=("top",), note=note))
    return 0
