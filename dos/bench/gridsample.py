"""`dos bench gridsample`: training-mode grid sampling of 1M points, ours against a numpy reference.

The reference is the straightforward way to grid-sample a cloud in numpy (the way Pointcept's GridSample
does it): voxel coordinates, a 64-bit FNV-1a hash of each voxel's three coordinates, an argsort of the
hashes, `np.unique` with inverse and counts, and one random point per voxel. It is written here, in this
module, so that both sides are timed in the same process on the same cloud.

The cloud imitates a scan: points on a few dozen noisy planes (ground, walls, boxes) of a 40 x 40 x 6 m
scene, so that voxels hold several points each at the 5 cm grid, as in real LiDAR and indoor scans.
The timed region of each side starts from the float32 coordinates and ends with the kept indices and
the inverse map. The two sides alternate run by run (so that a busy machine slows both alike) after one
warm-up each; reported are the medians of `repeats` runs and the ratio reference / ours (the bar is 3x).
Torch runs on one thread by default: numpy's side is single-threaded, and grid sampling runs in DataLoader
workers, where torch uses one thread per worker.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--grid-size", type=float, default=0.05, help="voxel size in metres")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as in a DataLoader worker; numpy's side uses one)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here (atomically)")


def scan_like_cloud(num_points: int, seed: int = 0) -> np.ndarray:
    """float32 [N, 3]: points on noisy axis-aligned planes of a 40 x 40 x 6 m scene (ground, walls, boxes)."""
    rng = np.random.default_rng(seed)
    num_planes = 48
    plane = rng.integers(num_planes, size=num_points)
    axis = rng.integers(3, size=num_planes)
    axis[0] = 2                                           # the ground
    level = rng.uniform([0, 0, 0], [40, 40, 6], size=(num_planes, 3))[np.arange(num_planes), axis]
    level[0] = 0.0
    lo = rng.uniform([0, 0, 0], [30, 30, 3], size=(num_planes, 3))
    size = rng.uniform([2, 2, 1], [10, 10, 3], size=(num_planes, 3))
    lo[0], size[0] = (0, 0, 0), (40, 40, 0)
    coord = lo[plane] + rng.random((num_points, 3)) * size[plane]
    coord[np.arange(num_points), axis[plane]] = level[plane] + rng.normal(0, 0.02, num_points)
    return coord.astype(np.float32)


def fnv1a_hash(grid: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a over the rows of a non-negative integer matrix, one coordinate (not byte) per step."""
    grid = grid.astype(np.uint64, copy=False)
    hashed = np.full(grid.shape[0], FNV_OFFSET, dtype=np.uint64)
    for d in range(grid.shape[1]):
        hashed ^= grid[:, d]
        hashed *= FNV_PRIME  # wraps modulo 2**64, as FNV intends
    return hashed


def reference_grid_sample(coord: np.ndarray, grid_size: float, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept indices [M], inverse [N] voxel of every point, counts [M]): hash, argsort, unique, random pick."""
    grid = np.floor((coord - coord.min(0)) / grid_size).astype(np.int64)  # the voxels of ours, for the check
    keys = fnv1a_hash(grid)
    order = np.argsort(keys)
    _, inverse_sorted, counts = np.unique(keys[order], return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    pick = starts + rng.integers(0, counts.max(), counts.size) % counts
    inverse = np.empty_like(inverse_sorted)
    inverse[order] = inverse_sorted
    return order[pick], inverse, counts


def _interleaved_times(fns: list, repeats: int) -> list[list[float]]:
    """Seconds of `repeats` runs of each function, the functions alternating, after one warm-up each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return times


def run(args: argparse.Namespace) -> int:
    import torch

    from dos.data.transforms import grid_sample
    from dos.utils.io import write_json

    torch.set_num_threads(args.threads)
    coord_np = scan_like_cloud(args.points, args.seed)
    coord = torch.from_numpy(coord_np)
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    ours = grid_sample(coord, args.grid_size, generator)
    ref_index, _, ref_counts = reference_grid_sample(coord_np, args.grid_size, rng)
    if not np.array_equal(np.sort(ours.counts.numpy()), np.sort(ref_counts)):
        raise RuntimeError(f"the two implementations disagree: {len(ours.index)} vs {len(ref_index)} voxels")

    ours_times, ref_times = _interleaved_times([lambda: grid_sample(coord, args.grid_size, generator),
                                                lambda: reference_grid_sample(coord_np, args.grid_size, rng)],
                                               args.repeats)
    ours_s, ref_s = float(np.median(ours_times)), float(np.median(ref_times))
    result = {
        "points": args.points, "grid_size": args.grid_size, "voxels": len(ref_index),
        "mean_points_per_voxel": args.points / len(ref_index), "repeats": args.repeats,
        "dos_seconds": ours_s, "reference_seconds": ref_s, "speedup": ref_s / ours_s,
        "dos_times": ours_times, "reference_times": ref_times,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__,
    }
    print(f"grid sampling of {args.points:,} points at {args.grid_size} m: {len(ref_index):,} voxels "
          f"({result['mean_points_per_voxel']:.2f} points each), median of {args.repeats}")
    rows = [(f"dos (torch, {result['torch_threads']} thread(s))", f"{ours_s * 1e3:.1f} ms"),
            ("reference (numpy FNV-1a)", f"{ref_s * 1e3:.1f} ms"), ("speed-up", f"{ref_s / ours_s:.2f}x")]
    for label, value in rows:
        print(f"  {label:<28} {value:>10}")
    if args.out:
        write_json(args.out, result)
        print(json.dumps({"written": str(args.out)}))
    return 0
