"""`dos visualize prototypes PRETRAIN_RUN [--scene ID] [--top-k 4] --out PNG [--ply PLY]`: prototype activation
maps of the pretraining teacher on one scene: the argmax prototype of every point, and the softmaps (each
prototype's logits normalised over the scene's units, the Softmap objective's teacher side) of the most-used
prototypes. Reads the teacher head and prototypes `dos pretrain` stores in encoder.pt."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from dos.report.visualize.render import ColorBar, Panel
from dos.report.visualize.scene import add_scene_arguments, scene_of, setup


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a dos pretrain run folder or its encoder.pt")
    add_scene_arguments(parser, "config file with the `data` section (default: the run's config.yaml)")
    parser.add_argument("--top-k", type=int, default=4, help="softmaps of the k most-used prototypes (default 4)")
    parser.add_argument("--out", required=True, help="output .png (or .svg)")
    parser.add_argument("--ply", default=None, help="also write the argmax-prototype colouring as PLY")
    parser.add_argument("--ascii", action="store_true", help="ascii PLY instead of binary little-endian")


def scene_prototype_maps(run: str | os.PathLike, args: argparse.Namespace, default_config: Path | None = None):
    """(the scene's sample, its dataset, PrototypeMaps of the run's teacher) for the scene arguments."""
    from dos.engine.common import input_channels
    from dos.report.visualize.features import (check_channels, encoder_file, load_encoder, load_teacher_head,
                                               prototype_maps, teacher_encoder, unit_embeddings)

    path = encoder_file(run)
    config, data, dataset, sample, grid = scene_of(args, default_config or path.parent / "config.yaml")
    backbone, record = load_encoder(path, "teacher")
    check_channels(path, record, input_channels(dataset, data))
    teacher = load_teacher_head(path, record)
    embed, point_unit = unit_embeddings(teacher_encoder(backbone, teacher.supervision_stage), teacher.head, sample,
                                        grid, data.coord_in_feat)
    return sample, dataset, prototype_maps(embed, teacher.prototypes, teacher.objective, teacher.temperature,
                                           point_unit)


def perplexity(usage: np.ndarray) -> float:
    """exp(entropy) of the prototype usage: the number of equally used prototypes it amounts to."""
    p = usage[usage > 0] / usage.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def argmax_panel(maps, title: str = "argmax prototype") -> Panel:
    """Every point coloured by its argmax prototype: the most-used ones in distinct colours, the rest grey."""
    from dos.report.visualize.colors import OTHER, RANKED, ranked_colors

    colors, shown = ranked_colors(maps.assigned, len(maps.usage))
    total = maps.usage.sum()
    legend = [(f"#{k}: {100 * maps.usage[k] / total:.0f}%", rgb) for k, rgb in zip(shown, RANKED)]
    used = int((maps.usage > 0).sum())
    if used > len(shown):
        legend.append((f"{used - len(shown)} others", OTHER))
    return Panel(f"{title}\n{used} of {len(maps.usage)} prototypes used, perplexity {perplexity(maps.usage):.1f}",
                 colors, legend=legend, legend_columns=3)


def softmap_panels(maps, k: int, decades: float = 3.0) -> list[Panel]:
    """The softmaps of the k most-used prototypes, as log10 of their ratio to the scene's maximum (a softmap
    at a low teacher temperature is peaked: a linear scale would show its few top points only)."""
    from dos.report.visualize.render import colormap

    bar = ColorBar("log10(softmap / its maximum over the scene)", "viridis", -decades, 0.0)
    panels = []
    total = maps.usage.sum()
    for rank, proto in enumerate(maps.top(k), 1):
        column = maps.softmaps[:, proto]
        values = np.log10(np.maximum(column / max(column.max(), 1e-300), 1e-300))
        share = 100 * maps.usage[proto] / total
        panels.append(Panel(f"softmap of prototype #{proto}\n(usage rank {rank}: {share:.0f}% of points)",
                            colormap(values, bar), colorbar=bar, on_top=values))
    return panels


def run(args: argparse.Namespace) -> int:
    from dos.report.visualize.ply import write_ply
    from dos.report.visualize.render import scene_figure

    if args.top_k < 0:
        from dos.errors import DosError

        raise DosError(f"--top-k must be >= 0, got {args.top_k}")
    setup(args.threads)
    sample, dataset, maps = scene_prototype_maps(args.run, args)
    xyz = sample["coord"].numpy()
    panels = [argmax_panel(maps), *softmap_panels(maps, args.top_k)]
    title = f"{sample['name']} ({dataset.split}): prototype activation maps of the teacher of {args.run}"
    print(scene_figure(xyz, panels, args.out, title,
                       note="softmap S(i, k) = exp(l_ik) / sum_j exp(l_jk) over the scene's supervision units, "
                            "l = cosine(embedding, prototype) / final teacher temperature"))
    if args.ply:
        print(write_ply(args.ply, xyz, panels[0].colors, binary=not args.ascii))
    return 0
