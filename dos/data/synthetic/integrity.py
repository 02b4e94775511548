"""What a generated dataset folder holds, file by file, so that a rerun can tell an intact folder from a
damaged one (a truncated scan, a deleted label file, a stray file) before calling it up to date."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def _sha256(path: Path) -> str | None:
    """The file's hex digest; None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _entries(root: Path) -> dict[str, Path]:
    """Every non-folder under `root` (broken links included) by its '/'-separated relative path."""
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*")) if not path.is_dir()}


def file_records(root: Path) -> dict[str, dict]:
    """{relative path: {"size": bytes, "sha256": hex digest}} of every file under `root`."""
    return {name: {"size": path.stat().st_size, "sha256": _sha256(path)} for name, path in _entries(root).items()}


def damage(root: Path, records: dict[str, dict]) -> list[str]:
    """How the files under `root` differ from `records` (of `file_records`); [] when every file is intact.

    Names and sizes are compared first and hashes only when they all agree, so that a damaged folder is
    found without reading it and an intact one is read once."""
    if not root.is_dir():
        return [f"{root} is missing"]
    present = _entries(root)
    problems = [f"{name} is missing" for name in records if name not in present]
    problems += [f"{name} is not in the manifest" for name in present if name not in records]
    for name, record in records.items():
        if name in present:
            try:
                size = present[name].stat().st_size
            except OSError as error:
                problems.append(f"{name} is unreadable ({error.strerror or error})")
                continue
            if size != record.get("size"):
                problems.append(f"{name} has {size} bytes, the manifest says {record.get('size')}")
    if problems:
        return problems
    for name, record in records.items():
        digest = _sha256(present[name])
        if digest is None:
            problems.append(f"{name} is unreadable")
        elif digest != record.get("sha256"):
            problems.append(f"{name}'s content differs (sha256)")
    return problems
