"""Writing one prepared room: every array of the room, then one rename of its folder into place."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dos.errors import DosError

PARTIAL = ".partial"


def room_done(out: Path, relative: str) -> bool:
    """Whether OUT/<relative> is already written (a complete room: the rename is the last step)."""
    return (out / relative).is_dir()


def write_room(out: Path, relative: str, arrays: dict[str, np.ndarray]) -> None:
    """OUT/<relative>/<name>.npy for every array, written under OUT/.partial/ and renamed into place."""
    final = out / relative
    staging = out / PARTIAL / relative.replace("/", "__")
    try:
        if staging.exists():
            shutil.rmtree(staging)  # left by an interrupted run
        staging.mkdir(parents=True)
        for name, array in arrays.items():
            with open(staging / f"{name}.npy", "wb") as handle:
                np.save(handle, array)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, final)
    except OSError as error:
        raise DosError(f"{final}: cannot write the prepared room ({error.strerror or error})") from None


def finish(out: Path) -> None:
    """Remove OUT/.partial once every room is written."""
    staging = out / PARTIAL
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()


def convert_all(job: Callable[[Any], str], jobs: list, out: Path, workers: int, log: Callable[[str], None]) -> None:
    """Run `job` on every entry of `jobs` (`workers` processes when > 1; `job` returns the room's name for the
    log), then remove OUT/.partial."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for done, name in enumerate(pool.map(job, jobs), start=1):
                log(f"[{done}/{len(jobs)}] {name}")
    else:
        for done, entry in enumerate(jobs, start=1):
            log(f"[{done}/{len(jobs)}] {job(entry)}")
    finish(out)
