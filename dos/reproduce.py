"""`dos reproduce`: the README's main job. Runs the Snakemake DAG (Snakefile at the repository root) at a scale.

This is a thin wrapper so that the one command stays the same as the DAG grows: it calls
`snakemake --cores N --config scale=SCALE [num_seeds=S] [first_seed=K] [first_stage=N0] [targets]` from the
repository root.

`--resolve` makes it a two-stage measurement (Stein's procedure, dos/report/claims.py): it runs the --seeds N
seeds, the first N0 of which (--first-stage, default all N) are the first stage; their claims table says how many
seeds each claim needs for the config's `target_half_width`;
the DAG then runs again with the largest of those (the first stage's runs are reused), and the claims are decided
on all of them with the first stage's sds. The number of seeds is chosen from the first stage's sds alone, which
is what keeps the 95 % coverage exact.
"""

from __future__ import annotations

import argparse
import csv
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
    parser.add_argument("--first-stage", type=int, default=None, metavar="N0",
                        help="decide the claims with Stein's two-stage intervals, the first N0 seeds as stage 1")
    parser.add_argument("--resolve", action="store_true",
                        help="two-stage measurement: run the --seeds N seeds (the first --first-stage of them, "
                             "default all, are stage 1), then as many as the claims need for the config's "
                             "target_half_width (module docstring)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    parser.add_argument("targets", nargs="*", help="Snakemake targets (default: the Snakefile's `all`)")


def repository_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "Snakefile").is_file():
        raise DosError(f"no Snakefile at {root}: `dos reproduce` runs from a source checkout (pip install -e .)")
    return root


def seeds_needed(claims_csv: Path, first_stage_seeds: list[int]) -> tuple[int, list[str]]:
    """(the most seeds any decided claim of `claims_csv` needs, the claims that give no number), from a claims
    table whose Stein first stage is `first_stage_seeds`: a table of another run (stale, or of t-intervals, whose
    seeds_needed is a forecast) is refused."""
    if not claims_csv.is_file():
        raise DosError(f"{claims_csv}: not written by the first stage; --resolve needs the claims among the targets "
                       "(the default target builds them)")
    from dos.report.claims import stein_method

    with claims_csv.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("verdict") not in ("not run", "reported")]
    if rows and "seeds_needed" not in rows[0]:
        raise DosError(f"{claims_csv}: no seeds_needed column (written by an older dos?)")
    expected = " ".join(map(str, first_stage_seeds))
    for row in rows:
        if row["method"] != stein_method(len(first_stage_seeds)) or \
                not (row["seeds"] + " ").startswith(expected + " "):
            raise DosError(f"{claims_csv}: claim {row['claim']!r} was not decided with the first stage "
                           f"{expected} ({row['method']!r}, seeds {row['seeds']!r}): not this run's claims table")
    needed = [int(float(row["seeds_needed"])) for row in rows if row["seeds_needed"]]
    if not needed:
        raise DosError(f"{claims_csv}: no decided claim has a seeds_needed value")
    return max(needed), [row["claim"] for row in rows if not row["seeds_needed"]]


def _snakemake_command(snakemake: str, args: argparse.Namespace, num_seeds: int | None,
                       first_stage: int | None) -> list[str]:
    cmd = [snakemake, *args.targets, "--cores", str(args.cores), "--config", f"scale={args.scale}"]
    if num_seeds is not None:
        cmd.append(f"num_seeds={num_seeds}")
    if args.first_seed is not None:
        cmd.append(f"first_seed={args.first_seed}")
    if first_stage is not None:
        cmd.append(f"first_stage={first_stage}")
    if args.dry_run:
        cmd.append("--dry-run")
    return cmd


def run(args: argparse.Namespace) -> int:
    root = repository_root()
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    if not Path(snakemake).exists():
        raise DosError("snakemake is not installed: pip install -e '.[workflow]'")
    if args.seeds is not None and args.seeds < 1:
        raise DosError(f"--seeds {args.seeds}: give the number of seeds, at least 1")
    if args.first_seed is not None and args.first_seed < 0:
        raise DosError(f"--first-seed {args.first_seed}: seeds are non-negative integers")
    first_stage = args.first_stage
    if args.resolve:
        if args.seeds is None or args.seeds < 2:
            raise DosError("--resolve: give the first stage's number of seeds with --seeds N0 (at least 2; "
                           "README, \"The claims at mini\", says what N0 costs)")
        first_stage = first_stage or args.seeds
    if first_stage is not None and (first_stage < 2 or (args.seeds is not None and first_stage > args.seeds)):
        raise DosError(f"--first-stage {first_stage}: at least 2, and at most the number of seeds run (--seeds)")
    # the rules call `dos`: make it the one of this interpreter's environment
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

    def snake(num_seeds: int | None) -> int:
        cmd = _snakemake_command(snakemake, args, num_seeds, first_stage)
        print("+", " ".join(cmd), flush=True)
        return subprocess.run(cmd, cwd=root, env=env).returncode

    code = snake(args.seeds)
    if code != 0 or not args.resolve:
        return code
    if args.dry_run:
        print("--resolve --dry-run: the second stage's size is read from the first stage's claims, after it has run")
        return 0
    first = args.first_seed or 0
    total, unsized = seeds_needed(root / "results" / args.scale / "claims.csv",
                                  list(range(first, first + first_stage)))
    if unsized:
        print(f"note: {len(unsized)} decided claim(s) give no seeds_needed (a first-stage run missing?): "
              + "; ".join(unsized), flush=True)
    if total <= args.seeds:
        print(f"resolved with the {args.seeds} seeds run: every sized claim's half-width is within the target")
        return 0
    print(f"second stage: the claims need {total} seeds (Stein, first stage of {first_stage}); running "
          f"{total - args.seeds} more", flush=True)
    return snake(total)
