"""`dos data generate`: write the synthetic benchmark of a scale in the real on-disk formats."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", required=True, choices=["smoke", "mini"],
                        help="sizes from dos/data/synthetic/scales.yaml")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per dataset, plus manifest.json)")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    parser.add_argument("--density", choices=["scale", "paper"], default="scale",
                        help="LiDAR scan density: the scale's reduced azimuth resolution (default) or `paper`, the "
                             "sensor's full one (nuScenes-like scans of ~30k points, 32 beams)")
    parser.add_argument("--force", action="store_true", help="regenerate datasets even when the manifest matches")
    parser.add_argument("--figures", default=None, metavar="DIR",
                        help="also draw scenes and class frequencies into DIR")


def run(args: argparse.Namespace) -> int:
    import time

    from .benchmark import generate_benchmark

    start = time.perf_counter()
    generate_benchmark(args.out, args.scale, args.seed, force=args.force, density=args.density)
    print(f"synthetic benchmark ({args.scale}, {args.density} density, seed {args.seed}) in {args.out}: {time.perf_counter() - start:.1f} s")
    if args.figures:
        from .figures import plot_benchmark

        for path in plot_benchmark(args.out, args.figures):
            print(f"figure: {path}")
    return 0
