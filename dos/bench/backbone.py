"""`dos bench backbone`: forward + backward throughput and peak memory of our PTv3, and of Pointcept's PT-v3m2
side by side when given a Pointcept checkout (`--pointcept PATH`).

Each implementation runs in a fresh Python process (clean peak-memory readings, and Pointcept's modules never
enter ours): it builds the model from a PTv3 config (default `mini` on CPU, `paper` on CUDA), a batch of
synthetic clouds, runs `--warmup` training steps, then times `--repeats` steps of
    out = model(batch); loss = out_feat.float().square().mean(); loss.backward()
(bf16 autocast on CUDA unless --fp32) and records the peak memory above the model and batch (dos.bench.memory).
Clouds are 2.5-D height fields (one voxel per (x, y) column, like a scanned surface), so a voxel has about
8 of its 26 neighbours occupied, as in real scans. Throughput = points in the batch / median step time (the
fastest step is recorded too: on a shared machine it is the steadier figure).
Ratios in the table are dos / Pointcept (throughput: > 1 is faster; memory: < 1 is leaner).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

IMPLEMENTATIONS = ("dos", "pointcept")
DEFAULTS = {"cpu": {"config": "mini", "clouds": 3, "points": 10_000},
            "cuda": {"config": "paper", "clouds": 4, "points": 100_000}}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--config", help="PTv3 config (default: mini on CPU, paper on CUDA)")
    parser.add_argument("--clouds", type=int, help="clouds per batch (default: 3 on CPU, 4 on CUDA)")
    parser.add_argument("--points", type=int, help="points per cloud (default: 10k on CPU, 100k on CUDA)")
    parser.add_argument("--decoder", action="store_true", help="encoder + decoder (default: the config's mode)")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pointcept", type=Path, help="a Pointcept checkout: also bench its PT-v3m2")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here (atomically)")
    parser.add_argument("--_worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)


def _settings(args: argparse.Namespace) -> dict:
    defaults = DEFAULTS["cuda" if args.device.startswith("cuda") else "cpu"]
    return {"config": args.config or defaults["config"], "clouds": args.clouds or defaults["clouds"],
            "points_per_cloud": args.points or defaults["points"], "device": args.device,
            "bf16": args.device.startswith("cuda") and not args.fp32}


def surface_batch(num_clouds: int, points: int, in_channels: int, seed: int, grid_size: float = 0.05):
    """Clouds of `points` voxels each on a wavy height field: unique (x, y) columns of a square, one z each."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    side = math.ceil(math.sqrt(points * 1.25))
    grids = []
    for _ in range(num_clouds):
        cells = torch.randperm(side * side, generator=generator)[:points]
        x, y = cells // side, cells % side
        phase = torch.rand(2, generator=generator) * 6.28
        z = (8 * torch.sin(x / 9.0 + phase[0]) + 8 * torch.cos(y / 13.0 + phase[1])).round().long() + 16
        grids.append(torch.stack([x, y, z], 1))
    grid = torch.cat(grids)
    coord = (grid + torch.rand(grid.shape, generator=generator)) * grid_size
    feat = torch.randn(len(grid), in_channels, generator=generator)
    offset = torch.cumsum(torch.full((num_clouds,), points), 0)
    return coord, grid, feat, offset, grid_size


def _worker(impl: str, args: argparse.Namespace) -> dict:
    import torch

    from dos.bench.memory import timed_repeats
    from dos.models.ops.attention import flash_attn_available
    from dos.models.point import Point
    from dos.models.ptv3 import load_ptv3_config, ptv3_from_config

    settings = _settings(args)
    device = settings["device"]
    config = load_ptv3_config(settings["config"])
    if args.decoder:
        config["enc_mode"] = False
    torch.manual_seed(args.seed)
    if impl == "dos":
        model = ptv3_from_config(settings["config"], **config).to(device)
    else:
        from dos.models.convert import build_pointcept_ptv3

        flash = device.startswith("cuda") and flash_attn_available()
        model = build_pointcept_ptv3(args.pointcept, config, enable_flash=flash, device=device)
    model.train()
    coord, grid, feat, offset, grid_size = surface_batch(settings["clouds"], settings["points_per_cloud"],
                                                         config["in_channels"], args.seed)
    coord, grid, feat, offset = (t.to(device) for t in (coord, grid, feat, offset))

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=settings["bf16"]):
            if impl == "dos":
                out = model(Point.from_coords(coord, feat, offset, grid_size, grid_coord=grid))
                out_feat = out.decoded.feat if out.decoded is not None else out.stages[-1].feat
            else:
                out_feat = model(dict(coord=coord, grid_coord=grid, feat=feat, offset=offset,
                                      grid_size=grid_size)).feat
        out_feat.float().square().mean().backward()
        for param in model.parameters():
            param.grad = None

    for _ in range(args.warmup):
        step()
    times, peak_bytes = timed_repeats(step, args.repeats, device)
    seconds = sorted(times)[len(times) // 2]
    points = int(offset[-1])
    return {"impl": impl, **settings, "enc_mode": bool(config["enc_mode"]), "seconds": seconds,
            "seconds_min": min(times), "step_seconds": times, "points": points,
            "points_per_s": points / seconds, "peak_extra_MiB": peak_bytes / 2**20,
            "parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}


def _format(row: dict) -> str:
    return (f"{row['impl']:>9}: {row['points_per_s']:>10,.0f} points/s ({row['seconds']:.3f} s per step of "
            f"{row['points']:,} points, fastest {row['seconds_min']:.3f} s), peak extra memory "
            f"{row['peak_extra_MiB']:,.0f} MiB")


def run(args: argparse.Namespace) -> int:
    if args._worker:
        print(json.dumps(_worker(args._worker, args)))
        return 0
    impls = ["dos"]
    skipped = None
    if args.pointcept is not None:
        from dos.models.convert import pointcept_unavailable

        skipped = pointcept_unavailable(args.pointcept)
        if skipped:
            print(f"Pointcept not benchmarked: {skipped}")
        else:
            impls.append("pointcept")
    settings = _settings(args)
    print(f"{settings['config']} PTv3, {settings['clouds']} clouds x {settings['points_per_cloud']:,} points on "
          f"{settings['device']}{' (bf16 autocast)' if settings['bf16'] else ''}, forward + backward", flush=True)
    rows = {}
    for impl in impls:
        cmd = [sys.executable, "-m", "dos.bench.backbone", "--_worker", impl, "--device", args.device,
               "--config", settings["config"], "--clouds", str(settings["clouds"]), "--points",
               str(settings["points_per_cloud"]), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
               "--seed", str(args.seed)]
        cmd += (["--decoder"] if args.decoder else []) + (["--fp32"] if args.fp32 else [])
        cmd += ["--pointcept", str(args.pointcept)] if impl == "pointcept" else []
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        rows[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        print(_format(rows[impl]), flush=True)
    ratios = {}
    if "pointcept" in rows:
        ours, theirs = rows["dos"], rows["pointcept"]
        ratios = {"throughput_dos_over_pointcept": ours["points_per_s"] / theirs["points_per_s"],
                  "memory_dos_over_pointcept": ours["peak_extra_MiB"] / max(theirs["peak_extra_MiB"], 1e-9)}
        print(f"    ratio: dos throughput {ratios['throughput_dos_over_pointcept']:.2f}x Pointcept's, peak memory "
              f"{ratios['memory_dos_over_pointcept']:.2f}x")
    if args.out:
        from dos.utils.io import write_json
        from dos.utils.provenance import environment

        write_json(args.out, {"rows": list(rows.values()), "ratios": ratios, "pointcept_skipped": skipped,
                              "settings": settings | {"warmup": args.warmup, "repeats": args.repeats,
                                                      "decoder": args.decoder},
                              "command": " ".join(sys.argv), "environment": environment()})
    return 0


if __name__ == "__main__":  # the subprocess workers run this module directly
    _parser = argparse.ArgumentParser()
    configure(_parser)
    raise SystemExit(run(_parser.parse_args()))
