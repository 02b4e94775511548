"""`dos visualize pca RUN_OR_ENCODER [--scene ID] --out PNG [--ply PLY]`: the frozen encoder's features on one
scene (every stage up-cast to full resolution, as the linear probe sees them), their first three principal
components as RGB (robustly scaled), as Sonata's demo draws them; beside the ground truth when labelled."""

from __future__ import annotations

import argparse

import numpy as np

from dos.report.visualize.scene import add_scene_arguments, scene_of, setup


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("encoder", help="a dos pretrain / distill run folder or its encoder.pt")
    add_scene_arguments(parser, "config file with the `data` section (default: the run's config.yaml)")
    parser.add_argument("--weights", choices=("teacher", "student"), default="teacher")
    parser.add_argument("--out", required=True, help="output .png (or .svg)")
    parser.add_argument("--ply", default=None, help="also write the PCA-coloured points as PLY")
    parser.add_argument("--ascii", action="store_true", help="ascii PLY instead of binary little-endian")


def run(args: argparse.Namespace) -> int:
    from dos.engine.common import input_channels
    from dos.report.visualize.colors import pca_colors
    from dos.report.visualize.features import check_channels, encoder_file, full_resolution_features, load_encoder
    from dos.report.visualize.ply import write_ply
    from dos.report.visualize.render import Panel, class_panel, scene_figure

    setup(args.threads)
    path = encoder_file(args.encoder)
    config, data, dataset, sample, grid = scene_of(args, path.parent / "config.yaml")
    backbone, record = load_encoder(path, args.weights)
    check_channels(path, record, input_channels(dataset, data))
    features, inverse = full_resolution_features(backbone, sample, grid, data.coord_in_feat)
    rgb = pca_colors(features)[inverse]
    xyz = sample["coord"].numpy()
    panels = [Panel(f"PCA of {features.shape[1]} encoder channels -> RGB", rgb,
                    legend=[("red: PC1", np.array([0.85, 0.1, 0.1])), ("green: PC2", np.array([0.1, 0.7, 0.1])),
                            ("blue: PC3", np.array([0.1, 0.2, 0.85]))], legend_columns=3)]
    if "segment" in sample:
        panels.append(class_panel(sample["segment"].numpy(), dataset.class_names))
    title = f"{sample['name']} ({dataset.split}, {len(xyz)} points): {args.weights} encoder of {path}"
    print(scene_figure(xyz, panels, args.out, title,
                       note=f"grid {grid:g} m; {len(features)} voxels; colours: principal components of the voxels' "
                            "features, each scaled between its 2nd and 98th percentiles"))
    if args.ply:
        print(write_ply(args.ply, xyz, rgb, binary=not args.ascii))
    return 0
