"""`dos config check [JOBS]`: validate the configs of many runs at once, as each command would at its start.

JOBS (a file, or `-` / absent for stdin) is a JSON list of {"command", "config", "overrides", "label"}: a
command (pretrain, probe, finetune, distill, detect, evaluate), its config file, its `--set` overrides in order, and a
name for the job. Every job is loaded with dos.config.schema.load_config against its command's schema; each
invalid one is printed as one line, `<label>: <error>`, and the exit status is then 2. The workflow calls this
once for its whole DAG (workflow/rules/checks.smk), so that a typo stops `snakemake -n`, not a job an hour later.
For `evaluate`, give the run's config as the config file and the run's own overrides before evaluate's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from dos.errors import DosError
from dos.config.schema import ConfigError, load_config

# command -> (module, the schema of its config)
SCHEMAS = {
    "pretrain": ("dos.engine.pretrain", "PretrainRunConfig"),
    "probe": ("dos.engine.segmentation", "SegmentationRunConfig"),
    "finetune": ("dos.engine.segmentation", "SegmentationRunConfig"),
    "evaluate": ("dos.engine.segmentation", "SegmentationRunConfig"),
    "distill": ("dos.engine.distill", "DistillRunConfig"),
    "detect": ("dos.engine.detect", "DetectRunConfig"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("jobs", nargs="?", default="-",
                        help="JSON list of {command, config, overrides, label} (default -: read from stdin)")


def read_jobs(text: str, where: str) -> list[dict]:
    try:
        jobs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(jobs, list):
        raise ConfigError(f"{where}: expected a JSON list of jobs")
    for i, job in enumerate(jobs):
        if not (isinstance(job, dict) and isinstance(job.get("config"), str)
                and isinstance(job.get("overrides", []), list) and job.get("command") in SCHEMAS):
            raise ConfigError(f"{where}: job {i}: expected {{command: {'|'.join(SCHEMAS)}, config: PATH, "
                              f"overrides: [KEY=VALUE, ...], label: NAME}}, got {job!r}")
    return jobs


def _schemas(jobs: list[dict]) -> dict[str, type]:
    return {command: getattr(importlib.import_module(module), name)
            for command, (module, name) in SCHEMAS.items() if any(job["command"] == command for job in jobs)}


def check_jobs(jobs: list[dict]) -> list[str | None]:
    """For each job, None when its config loads, else the line that says why not."""
    schemas, lines = _schemas(jobs), []
    for i, job in enumerate(jobs):
        try:
            load_config(schemas[job["command"]], job["config"], [str(item) for item in job.get("overrides", [])])
            lines.append(None)
        except (DosError, ValueError) as error:  # ConfigError, and whatever a schema's own checks raise
            lines.append(f"{job.get('label') or f'job {i}'} (dos {job['command']}): {error}")
    return lines


def _workers(count: int) -> int:
    """Processes to share the jobs: loading a config is ~20 ms of pure-Python YAML, and the workflow checks
    hundreds; fork only where it is the default-safe start method (Linux), and only for enough jobs."""
    if sys.platform != "linux" or count < 64:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), 8, count // 32))


def run(args: argparse.Namespace) -> int:
    where = "stdin" if args.jobs == "-" else args.jobs
    text = sys.stdin.read() if args.jobs == "-" else Path(args.jobs).read_text()
    jobs = read_jobs(text, where)
    _schemas(jobs)  # import them once, before any fork
    workers = _workers(len(jobs))
    if workers == 1:
        lines = check_jobs(jobs)
    else:
        chunks = [jobs[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(check_jobs, chunks))
        lines = [None] * len(jobs)
        for i, result in enumerate(results):
            lines[i::workers] = result
    bad = [line for line in lines if line is not None]
    for line in bad:
        print(line)
    if bad:
        raise ConfigError(f"{len(bad)} of {len(jobs)} job configs are invalid")
    print(f"{len(jobs)} job configs are valid")
    return 0
