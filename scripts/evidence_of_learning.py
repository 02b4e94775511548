#!/usr/bin/env python
"""Evidence of learning at the mini scale: linear probing of a DOS-pretrained encoder against a frozen randomly
initialised one, on the synthetic nuScenes-like benchmark, over several seeds, through the `dos` command line.

    python scripts/evidence_of_learning.py [--seeds 0 1 2] [--steps 200] [--out runs/evidence]

Needs the mini synthetic benchmark (`dos data generate --scale mini --out data/mini/synthetic`). Prints one line
per seed and the mean ± std of both, with the wall time, and writes the same as JSON to OUT/summary.json.
The settings are the workflow's mini settings (config/config.yaml, scales.mini).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ["data.format=synthetic-lidar", "data.root=data/mini/synthetic/synthetic-nuscenes", "data.cache=true"]
PRETRAIN = DATA + ["model.config=mini", "model.supervision_stage=2", "views.grid_size=0.1", "distill.head_hidden=512",
                   "distill.head_dim=128", "optim.lr=0.002", "train.batch_size=4", "train.checkpoint_every=50",
                   "train.log_every=50", "train.num_workers=0", "train.num_threads=1"]
PROBE = DATA + ["model.config=mini", "head.grid_size=0.1", "head.cache_features=true", "train.batch_size=8",
                "train.max_steps=1500", "train.checkpoint_every=5000", "train.log_every=500", "train.num_workers=0",
         "train.num_threads=1",
                "optim.lr=0.02"]


def dos(*args: str, overrides: list[str]) -> None:
    cmd = [sys.executable, "-m", "dos", *args]
    for item in overrides:
        cmd += ["--set", item]
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200, help="pretraining steps")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "evidence")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for seed in args.seeds:
        pre = args.out / f"pretrain_seed{seed}"
        dos("pretrain", "dos/config/pretrain/dos_outdoor.yaml", "--out", str(pre),
            overrides=PRETRAIN + [f"train.max_steps={args.steps}", f"seed={seed}"])
        result = {"seed": seed}
        for name, pretrained in (("dos", str(pre)), ("random", "null")):
            run = args.out / f"probe_{name}_seed{seed}"
            dos("probe", "dos/config/probe/lp_outdoor.yaml", "--out", str(run),
                overrides=PROBE + [f"head.pretrained={pretrained}", f"seed={seed}"])
            metrics = json.loads((run / "metrics.json").read_text())
            result[name] = {k: 100 * metrics[k] for k in ("miou", "macc", "allacc")}
        rows.append(result)
        print(f"seed {seed}: DOS mIoU {result['dos']['miou']:.2f} vs random {result['random']['miou']:.2f}",
              flush=True)
    wall = time.perf_counter() - start
    summary = {"rows": rows, "wall_seconds": wall, "pretrain_steps": args.steps}
    for name in ("dos", "random"):
        values = [r[name]["miou"] for r in rows]
        summary[name] = {"miou_mean": statistics.mean(values),
                         "miou_std": statistics.stdev(values) if len(values) > 1 else 0.0}
    print(f"DOS {summary['dos']['miou_mean']:.2f} ± {summary['dos']['miou_std']:.2f} mIoU vs random frozen encoder "
          f"{summary['random']['miou_mean']:.2f} ± {summary['random']['miou_std']:.2f} over seeds {args.seeds} "
          f"({wall / 60:.1f} min)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
