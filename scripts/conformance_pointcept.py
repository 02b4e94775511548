#!/usr/bin/env python
"""Conformance of dos's PointTransformerV3 with Pointcept's PT-v3m2 (Sonata) on the same weights and input.

    python scripts/conformance_pointcept.py --pointcept /path/to/Pointcept [--config paper] [--out result.json]

Builds Pointcept's PT-v3m2 from a checkout outside this repository (nothing of it is copied here), perturbs
its parameters (so that LayerNorm weights and biases are not 1 and 0 and a swapped mapping would show),
loads them into ours through `dos.models.convert`, and runs both in fp32 without flash attention on the same
batch: the same grid_coord passed explicitly to both, order shuffling off (in Pointcept's pooling modules too,
which otherwise shuffle whatever the model's flag), and every cloud larger than the
patch size at every stage (Pointcept's non-flash attention then uses the same patches as ours). Reports the
max relative difference max|ours - pointcept| / max|pointcept| of every encoder stage (encoder-only models)
and of the decoder output (encoder-decoder models). Exit 1 when above --tolerance (default 1e-4).

Skipped (exit 0, one line saying why) when the checkout is absent or Pointcept's imports (spconv,
torch_scatter, timm, addict) are not importable. Only the model files are imported: the package __init__
files, which import every model and the training engine, are bypassed by registering bare packages.
On CPU, spconv's default implicit-GEMM algorithm needs CUDA, so Pointcept's sparse convs are switched to
spconv's Native algorithm (the same convolution), and Pointcept's model runs in train mode (see compare()).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's dos, if not installed


def make_batch(num_clouds: int, points: int, extent: int, in_channels: int, seed: int):
    """Clouds of `points` distinct voxels in an extent^3 box (grid size 0.05), features ~ N(0, 1)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    grids = []
    for _ in range(num_clouds):
        cells = torch.randperm(extent ** 3, generator=generator)[:points]
        grids.append(torch.stack([cells // extent ** 2, (cells // extent) % extent, cells % extent], 1))
    grid = torch.cat(grids)
    grid_size = 0.05
    coord = (grid + torch.rand(grid.shape, generator=generator)) * grid_size
    feat = torch.randn(len(grid), in_channels, generator=generator)
    offset = torch.cumsum(torch.full((num_clouds,), points), 0)
    return coord, grid, feat, offset, grid_size


def compare(args: argparse.Namespace, enc_mode: bool) -> dict:
    import torch

    from dos.models.convert import build_pointcept_ptv3, load_pointcept_checkpoint
    from dos.models.point import Point
    from dos.models.ptv3 import load_ptv3_config, ptv3_from_config

    config = load_ptv3_config(args.config)
    stages = len(config["enc_depths"])
    config.update(in_channels=args.in_channels, enc_patch_size=(args.patch_size,) * stages,
                  dec_patch_size=(args.patch_size,) * (stages - 1), attn_drop=0.0, proj_drop=0.0, drop_path=0.0,
                  layer_scale=args.layer_scale, shuffle_orders=False, enc_mode=enc_mode)
    if "serialization_depth" in config:  # Pointcept sets the curve depth per batch (largest grid coordinate)
        config["serialization_depth"] = None
    torch.manual_seed(args.seed)
    theirs = build_pointcept_ptv3(args.pointcept, config, enable_flash=False, device=args.device)
    with torch.no_grad():  # LayerNorms start at (1, 0) and biases at 0: perturb every tensor
        for param in theirs.parameters():
            param.add_(torch.randn_like(param) * (0.1 if param.dim() == 1 else 0.02))
    ours = ptv3_from_config(args.config, **config, conv_backend="torch", attn_backend="sdpa")
    report = load_pointcept_checkpoint(ours, {"state_dict": {"module." + k: v
                                                             for k, v in theirs.state_dict().items()}})
    theirs, ours = theirs.to(args.device).eval(), ours.to(args.device).eval()
    if args.device == "cpu":
        # spconv fuses the conv bias into its kernel in eval mode only, and its CPU kernels refuse a bias; in
        # train mode it adds the bias afterwards. With dropout, attention dropout and drop path all 0 (above),
        # PT-v3m2 computes the same function in both modes, so Pointcept's model runs in train mode on CPU.
        theirs.train()

    coord, grid, feat, offset, grid_size = make_batch(args.clouds, args.points, args.extent, args.in_channels,
                                                      args.seed)
    coord, grid, feat, offset = (t.to(args.device) for t in (coord, grid, feat, offset))
    with torch.no_grad():
        t0 = time.perf_counter()
        out = ours(Point.from_coords(coord, feat, offset, grid_size, grid_coord=grid))
        ours_seconds = time.perf_counter() - t0
        smallest = min(int(stage.counts.min()) for stage in out.stages)
        if smallest <= args.patch_size:
            raise SystemExit(f"a cloud has only {smallest} voxels at some stage (patch size {args.patch_size}): "
                             f"use more --points or a smaller --patch-size")
        t0 = time.perf_counter()
        result = theirs(dict(coord=coord, grid_coord=grid, feat=feat, offset=offset, grid_size=grid_size))
        theirs_seconds = time.perf_counter() - t0
    final = out.stages[-1] if enc_mode else out.decoded
    if not (torch.equal(result.grid_coord.long(), final.grid_coord) and torch.equal(result.batch.long(), final.batch)):
        raise SystemExit("Pointcept and dos output different voxel sets or orders")
    diff = (final.feat - result.feat).abs().max().item()
    scale = result.feat.abs().max().item()
    stage_rel_diffs = []
    if enc_mode:  # every encoder stage, through Pointcept's pooling_parent chain (coarsest first)
        level = result
        for stage in reversed(out.stages):
            stage_rel_diffs.append((stage.feat - level.feat).abs().max().item() / level.feat.abs().max().item())
            level = level.get("pooling_parent")
    return {"mode": "encoder" if enc_mode else "encoder-decoder", "points": int(offset[-1]),
            "output_shape": list(result.feat.shape), "max_abs_diff": diff, "max_abs_pointcept": scale,
            "max_rel_diff": max([diff / scale] + stage_rel_diffs),
            "stage_max_rel_diffs_finest_first": stage_rel_diffs[::-1], "converted_tensors": len(report.state_dict),
            "seconds_dos": ours_seconds, "seconds_pointcept": theirs_seconds,
            "smallest_cloud_over_stages": smallest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pointcept", type=Path, required=True, help="a Pointcept checkout (outside this repo)")
    parser.add_argument("--config", default="paper", help="dos PTv3 config for the architecture (default paper)")
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--in-channels", type=int, default=6)
    parser.add_argument("--layer-scale", type=float, default=None)
    parser.add_argument("--clouds", type=int, default=2)
    parser.add_argument("--points", type=int, default=12000, help="voxels per cloud")
    parser.add_argument("--extent", type=int, default=96, help="clouds lie in an extent^3 voxel box")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here (atomically)")
    args = parser.parse_args(argv)

    from dos.models.convert import pointcept_unavailable

    reason = pointcept_unavailable(args.pointcept)
    if reason:
        print(f"SKIPPED: {reason}")
        return 0
    results = [compare(args, enc_mode=True), compare(args, enc_mode=False)]
    for r in results:
        print(f"{r['mode']:>15}: {r['points']} points, output {r['output_shape']}, max rel diff "
              f"{r['max_rel_diff']:.2e} (max abs {r['max_abs_diff']:.2e} of {r['max_abs_pointcept']:.2f}); "
              f"forward dos {r['seconds_dos']:.2f} s, Pointcept {r['seconds_pointcept']:.2f} s")
    worst = max(r["max_rel_diff"] for r in results)
    passed = worst <= args.tolerance
    print(f"{'PASS' if passed else 'FAIL'}: max relative difference {worst:.2e} (bar {args.tolerance:g})")
    if args.out:
        from dos.utils.io import write_json
        from dos.utils.provenance import environment

        write_json(args.out, {"results": results, "tolerance": args.tolerance, "passed": passed,
                              "config": args.config, "patch_size": args.patch_size, "device": args.device,
                              "environment": environment()})
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
