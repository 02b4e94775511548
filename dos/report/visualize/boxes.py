"""`dos visualize boxes DETECT_RUN [--scene ID] [--min-score S] --out PNG`: a `dos detect` run's predicted boxes
against the ground truth on one validation scene, in bird's-eye view (Table 2's figure).

The points are grey; ground-truth boxes are drawn in their class colour (dashed when no LiDAR point falls in the
box: nuScenes' evaluation ignores those), predicted boxes with a score of at least `--min-score` in black, with a
short stroke from the centre to the front. The predictions are the run's own `predictions.json` (what its metrics
scored), not a new forward pass.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dos.data.boxes import Boxes
from dos.errors import DosError


def configure(parser: argparse.ArgumentParser) -> None:
    from dos.report.visualize.scene import add_output_arguments

    parser.add_argument("run", help="a finished dos detect run folder (config.yaml, predictions.json)")
    parser.add_argument("--scene", default=None, help="scan id (default: the validation split's first scene)")
    parser.add_argument("--min-score", type=float, default=0.3, help="draw predictions scored at least this")
    parser.add_argument("--range", type=float, default=51.2, help="half-width of the drawn square (metres)")
    parser.add_argument("--out", required=True, help="output .png (or .svg)")
    add_output_arguments(parser)


def box_corners(center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """[M, 4, 2] xy corners of boxes (size = width, length, height; the length lies along the yaw)."""
    c, s = np.cos(yaw), np.sin(yaw)
    half_l, half_w = size[:, 1] / 2, size[:, 0] / 2
    local = np.stack([np.stack([half_l, half_w], -1), np.stack([-half_l, half_w], -1),
                      np.stack([-half_l, -half_w], -1), np.stack([half_l, -half_w], -1)], axis=1)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], axis=1)  # [M, 2, 2]
    return np.einsum("mij,mkj->mki", rot, local) + center[:, None, :2]


def _predicted(run: Path, token: str, min_score: float) -> Boxes:
    from dos.data.boxes import DETECTION_CLASSES, quaternion_to_yaw

    path = run / "predictions.json"
    if not path.is_file():
        raise DosError(f"{path}: not found; is {run} a finished dos detect run?")
    try:
        results = json.loads(path.read_text())["results"]
    except (ValueError, KeyError, TypeError) as error:
        raise DosError(f"{path}: not a nuScenes results file ({error})") from None
    if token not in results:
        raise DosError(f"{path}: no predictions for scene {token!r}")
    kept = [b for b in results[token] if b["detection_score"] >= min_score]
    if not kept:
        return Boxes.empty()
    return Boxes(np.array([b["translation"] for b in kept]), np.array([b["size"] for b in kept]),
                 quaternion_to_yaw(np.array([b["rotation"] for b in kept])),
                 np.array([DETECTION_CLASSES.index(b["detection_name"]) for b in kept]))


def draw(coord: np.ndarray, truth, predicted, title: str, half: float, out: Path) -> Path:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon

    from dos.data.boxes import DETECTION_CLASSES
    from dos.data.synthetic.figures import CLASS_PALETTE
    from dos.report.figures import footer, new_figure, save_figure

    fig = new_figure(7.5, 7.0)
    ax = fig.add_subplot(1, 1, 1)
    near = (np.abs(coord[:, 0]) <= half) & (np.abs(coord[:, 1]) <= half)
    ax.scatter(coord[near, 0], coord[near, 1], s=0.3, c="#b0b0b0", linewidths=0, rasterized=True)
    colour = {i: CLASS_PALETTE[i % len(CLASS_PALETTE)] for i in range(len(DETECTION_CLASSES))}
    for corners, label, points in zip(box_corners(truth.center, truth.size, truth.yaw), truth.label,
                                      truth.num_points):
        ax.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=colour[int(label)], linewidth=1.4,
                             linestyle="--" if points == 0 else "-"))
    for box, corners in enumerate(box_corners(predicted.center, predicted.size, predicted.yaw)):
        ax.add_patch(Polygon(corners, closed=True, fill=False, edgecolor="black", linewidth=0.8))
        front = corners[[0, 3]].mean(0)
        ax.plot([predicted.center[box, 0], front[0]], [predicted.center[box, 1], front[1]], color="black",
                linewidth=0.8)
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title, fontsize=9)
    present = sorted({int(i) for i in truth.label})
    handles = [Patch(facecolor="none", edgecolor=colour[i], label=f"GT {DETECTION_CLASSES[i]}") for i in present]
    handles.append(Line2D([], [], color="black", linewidth=0.8, label="predicted"))
    ax.legend(handles=handles, fontsize=7, loc="upper right", ncol=2, framealpha=0.8)
    footer(fig, "grey: LiDAR points; dashed: ground-truth boxes without a LiDAR point (not evaluated); "
                "predictions from the run's predictions.json")
    return save_figure(fig, out)


def run(args: argparse.Namespace) -> int:
    from dos.report.visualize.scene import data_section, open_scene, read_config

    run_dir = Path(args.run)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise DosError(f"{config_path}: not found; is {run_dir} a finished dos detect run?")
    data = data_section(read_config(config_path), config_path)
    _, sample = open_scene(data, None, args.scene)
    token = str(sample["name"])
    if "boxes" not in sample:
        raise DosError(f"{data.root}: scene {token} has no 3D boxes")
    predicted = _predicted(run_dir, token, args.min_score)
    truth = sample["boxes"]
    title = (f"{token} ({data.val_split}): {len(predicted)} predictions scored >= {args.min_score:g} (black), "
             f"{len(truth)} ground-truth boxes (class colours)\n{run_dir}")
    print(draw(sample["coord"].numpy(), truth, predicted, title, args.range, Path(args.out)))
    return 0
