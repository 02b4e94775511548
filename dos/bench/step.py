"""`dos bench step`: cost of one DOS pretraining step (steps/s, scans/s, aten calls, CUDA launches and syncs,
peak memory), optionally side by side with another commit of the harness.

Each round runs `dos/bench/step_worker.py` in a fresh process on the same prepared batches. With
`--against REF` the rounds alternate between this tree and a `git worktree` of REF (so machine load hits both
alike), and the ratios of the medians are printed. The record (every round, the medians, the command) is written
as JSON to `--out` (default reports/bench/step_<scale>_<device>.json).

Scales: `mini` = the pretraining settings `make reproduce` uses (config/config.yaml, scales.mini.run_overrides,
outdoor, on the synthetic nuScenes-like data); `paper` = dos/config/pretrain/dos_outdoor.yaml as shipped (PTv3
paper size, batch 16, bf16 on CUDA) on the data given by --data.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "step_worker.py"
CONFIG = "dos/config/pretrain/dos_outdoor.yaml"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=("mini", "paper"), default="mini")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--data", default="data/mini/synthetic/synthetic-nuscenes",
                        help="synthetic-lidar dataset root (default: the mini nuScenes-like data)")
    parser.add_argument("--against", metavar="GIT_REF", help="also measure this commit, alternating rounds")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per tree (median reported)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `dos pretrain` override (both trees)")
    parser.add_argument("--out", help="JSON record (default reports/bench/step_<scale>_<device>.json)")


def scale_overrides(scale: str, data_root: str) -> list[str]:
    """The `--set` list of `dos pretrain` at this scale (mini: the workflow's own run_overrides)."""
    sets = ["data.format=synthetic-lidar", f"data.root={data_root}", "data.cache=true", "train.num_workers=0"]
    if scale == "paper":
        return sets
    import yaml

    mini = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scales"]["mini"]["run_overrides"]
    return sets + [*mini.get("all", []), *mini["pretrain"].get("all", []), *mini["pretrain"].get("outdoor", [])]


def _round(tree: Path, args: argparse.Namespace, sets: list[str]) -> dict:
    command = [sys.executable, str(WORKER), str(tree / CONFIG), "--device", args.device,
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--threads", str(args.threads)]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, cwd=os.getcwd(), env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("STEP_RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"dos bench step: the worker failed in {tree} (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("STEP_RESULT "):])


def _median(rounds: list[dict], key: str) -> float | None:
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


KEYS = ("seconds_per_step", "steps_per_s", "scans_per_s", "aten_calls_per_step", "aten_calls_per_batch_built",
        "kernel_launches_per_step",
        "host_syncs_per_step", "peak_memory_bytes")


def run(args: argparse.Namespace) -> int:
    from dos.utils.io import write_json

    sets = scale_overrides(args.scale, args.data) + list(args.overrides)
    trees = {"this": REPO}
    worktree = None
    if args.against:
        worktree = Path(tempfile.mkdtemp(prefix="dos-bench-against-"))
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(worktree),
                        args.against], check=True, capture_output=True)
        trees["against"] = worktree
    rounds: dict[str, list[dict]] = {name: [] for name in trees}
    try:
        for i in range(args.rounds):
            for name, tree in trees.items():
                result = _round(tree, args, sets)
                rounds[name].append(result)
                print(f"round {i + 1} {name}: {result['seconds_per_step']:.3f} s/step, "
                      f"{result['aten_calls_per_step']} aten calls", flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)
    medians = {name: {k: _median(r, k) for k in KEYS if _median(r, k) is not None} for name, r in rounds.items()}
    print(f"\n{'':28s}" + "".join(f"{name:>16s}" for name in trees) + ("       ratio" if args.against else ""))
    for key in KEYS:
        if key not in medians["this"]:
            continue
        row = f"{key:28s}" + "".join(f"{medians[n][key]:16.4g}" for n in trees)
        if args.against and medians["against"].get(key):
            row += f"{medians['this'][key] / medians['against'][key]:12.3f}"
        print(row)
    record = {"command": "dos bench step " + " ".join(shlex.quote(a) for a in sys.argv[3:]),
              "scale": args.scale, "device": args.device, "threads": args.threads, "against": args.against,
              "sets": sets, "medians": medians, "rounds": rounds}
    if args.against:
        record["ratios_this_over_against"] = {k: medians["this"][k] / medians["against"][k]
                                              for k in medians["this"] if medians["against"].get(k)}
    out = Path(args.out or REPO / "reports" / "bench" / f"step_{args.scale}_{args.device}.json")
    write_json(out, record)
    print(f"record: {out}")
    return 0
