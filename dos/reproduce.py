"""`dos reproduce`: the README's main job. Runs the Snakemake DAG (Snakefile at the repository root) at a scale.

This is a thin wrapper so that the one command stays the same as the DAG grows: it calls
`snakemake --cores N --config scale=SCALE [num_seeds=S] [first_seed=K] [targets]` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dos.errors import DosError

SCALES = ("smoke", "mini", "paper")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=SCALES, default="mini")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="run seeds 0 .. N-1 instead of the scale's `seeds` (config/config.yaml); what N seeds "
                             "resolve at mini: README, \"The claims at mini\"")
    parser.add_argument("--first-seed", type=int, default=None, metavar="K",
                        help="start the seeds at K: K .. K+N-1 (N from --seeds, else the scale's number of seeds), "
                             "e.g. seeds nobody has run yet")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    parser.add_argument("targets", nargs="*", help="Snakemake targets (default: the Snakefile's `all`)")


def repository_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "Snakefile").is_file():
        raise DosError(f"no Snakefile at {root}: `dos reproduce` runs from a source checkout (pip install -e .)")
    return root


def run(args: argparse.Namespace) -> int:
    root = repository_root()
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    if not Path(snakemake).exists():
        raise DosError("snakemake is not installed: pip install -e '.[workflow]'")
    if args.seeds is not None and args.seeds < 1:
        raise DosError(f"--seeds {args.seeds}: give the number of seeds, at least 1")
    if args.first_seed is not None and args.first_seed < 0:
        raise DosError(f"--first-seed {args.first_seed}: seeds are non-negative integers")
    cmd = [snakemake, *args.targets, "--cores", str(args.cores), "--config", f"scale={args.scale}"]
    if args.seeds is not None:
        cmd.append(f"num_seeds={args.seeds}")
    if args.first_seed is not None:
        cmd.append(f"first_seed={args.first_seed}")
    if args.dry_run:
        cmd.append("--dry-run")
    print("+", " ".join(cmd), flush=True)
    # the rules call `dos`: make it the one of this interpreter's environment
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run(cmd, cwd=root, env=env).returncode
