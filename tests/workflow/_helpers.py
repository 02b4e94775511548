"""Shared by the workflow tests: copies of the repository's working tree, running commands, hashing outputs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # this environment's snakemake, dvc and dos


def working_tree_files(root: Path = REPO_ROOT) -> list[str]:
    """The files of the working tree as git sees them: tracked plus untracked-but-not-ignored (uncommitted work
    included; .venv, data/, caches excluded)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True).stdout
    return sorted({name for name in out.decode().split("\0") if name and os.path.lexists(root / name)})


def copy_tree(dest: Path, names: list[str] | None = None, root: Path = REPO_ROOT) -> Path:
    """Copy files of the working tree (all of them by default) to dest, keeping symlinks as symlinks."""
    for name in names if names is not None else working_tree_files(root):
        source, target = root / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
    return dest


def snakemake(*args: str) -> list[str]:
    """This environment's snakemake with the given arguments."""
    return [str(BIN / "snakemake"), *args]


def environment(**extra: str) -> dict[str, str]:
    """os.environ with this interpreter's bin/ first on PATH (the rules call `dos`), no DVC analytics, and no
    bytecode written into the copied sources (it would change DVC's hash of the `dos` dependency)."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONDONTWRITEBYTECODE="1")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run cmd; on failure raise with its output, so that pytest shows why."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` in {cwd} exited with {result.returncode}\n"
                             f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}")
    return result


def tree_hashes(root: Path, *dirs: str) -> dict[str, str]:
    """sha256 of every file under root/dir for each dir, keyed by its path relative to root."""
    hashes = {}
    for top in dirs:
        for path in sorted(p for p in (root / top).rglob("*") if p.is_file()):
            hashes[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes
