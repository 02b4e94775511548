"""`dos visualize figure4 --benchmark DIR [--scannet200 ROOT] --models LABEL=RUN ... --out PNG`: the paper's
Figure 4. Top: class frequencies against rank on log-log axes with the fitted Zipf exponents (least squares on
the log-log points, and maximum likelihood), for the synthetic benchmark's datasets and, when given, a real
ScanNet200 root's segment200 labels. Bottom: the argmax-prototype maps of one scene for each pretraining run
(the paper: Zipf prior alpha 1.3 against the uniform alpha 0)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dos.errors import DosError
from dos.report.visualize.figure5 import labelled_paths
from dos.report.visualize.scene import add_scene_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", default=None, help="a synthetic benchmark folder (`dos data generate`)")
    parser.add_argument("--scannet200", default=None,
                        help="a ScanNet root in Pointcept's layout (<split>/scene*/segment200.npy)")
    parser.add_argument("--models", nargs="*", default=[], metavar="LABEL=RUN",
                        help="dos pretrain runs, e.g. 'alpha 1.3=runs/.../dos/seed0' 'alpha 0=runs/.../softmap/seed0'")
    add_scene_arguments(parser, "config file with the `data` section (default: the first model's config.yaml)")
    parser.add_argument("--out", required=True, help="output .png (or .svg)")


def frequency_series(benchmark: str | None, scannet200: str | None) -> dict[str, np.ndarray]:
    """Points per class: each synthetic dataset of the benchmark (lidar: its classes; rooms: the 200 classes),
    and the real ScanNet200 labels."""
    from dos.data.synthetic.figures import lidar_class_counts, rooms_class_counts

    series: dict[str, np.ndarray] = {}
    if benchmark:
        root = Path(benchmark)
        if not (root / "manifest.json").is_file():
            raise DosError(f"{root / 'manifest.json'}: not found (--benchmark is a `dos data generate` folder)")
        for folder in sorted(p for p in root.iterdir() if (p / "labels.yaml").is_file()):
            if (folder / "sequences").is_dir():
                series[folder.name] = lidar_class_counts(folder)[1]
            else:
                series[f"{folder.name} (200 classes)"] = rooms_class_counts(folder, "segment200")
    if scannet200:
        counts = rooms_class_counts(Path(scannet200), "segment200", 200)
        if counts.sum() == 0:
            raise DosError(f"{scannet200}: no <split>/scene*/segment200.npy with labels (a ScanNet200 root in "
                           "Pointcept's layout)")
        series["ScanNet200"] = counts
    return series


def run(args: argparse.Namespace) -> int:
    import matplotlib

    from dos.data.synthetic.figures import draw_frequencies
    from dos.report.figures import RC, new_figure, save_figure
    from dos.report.visualize.features import encoder_file
    from dos.report.visualize.prototypes import argmax_panel, scene_prototype_maps
    from dos.report.visualize.render import PANEL_WIDTH, draw_scene, view_heights
    from dos.report.visualize.scene import setup

    series = frequency_series(args.benchmark, args.scannet200)
    models = labelled_paths(args.models, "--models")
    if not series and not models:
        raise DosError("nothing to draw: give --benchmark / --scannet200 and / or --models")
    setup(args.threads)
    maps, sample = [], None
    for label, path in models:
        default = encoder_file(models[0][1]).parent / "config.yaml"
        sample, dataset, scene_maps = scene_prototype_maps(path, args, default)
        maps.append(argmax_panel(scene_maps, f"{label}: argmax prototype"))
    width = max(6.0, PANEL_WIDTH * len(maps) + 0.4)
    bottom = view_heights(sample["coord"].numpy(), ("top",))[0] + 1.4 if maps else 0.0
    with matplotlib.rc_context(RC):
        fig = new_figure(width, (3.4 if series else 0.0) + bottom)
        parts = fig.subfigures(int(bool(series)) + int(bool(maps)), 1, squeeze=False,
                               height_ratios=[h for h in (3.4 if series else 0, bottom) if h])[:, 0]
        if series:
            ax = parts[0].subplots()
            draw_frequencies(ax, series)
            ax.set_title("Figure 4 (top): class frequencies follow a Zipf-like law")
        if maps:
            draw_scene(parts[-1], sample["coord"].numpy(), maps, views=("top",),
                       title=f"Figure 4 (bottom): prototype assignment on {sample['name']} ({dataset.split})")
        print(save_figure(fig, args.out))
    return 0
