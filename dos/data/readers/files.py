"""Checked reads shared by the readers: every fault becomes a DatasetError that names the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path


def read_records(path: Path, dtype: str | np.dtype, width: int, what: str) -> np.ndarray:
    """A raw binary file of fixed-size records -> array [N, width] (or [N] for width 1)."""
    require_file(path, what)
    record = np.dtype(dtype).itemsize * width
    size = path.stat().st_size
    if size % record:
        raise DatasetError(f"{path}: {size} bytes is not a multiple of the {record}-byte record "
                           f"({width} x {np.dtype(dtype).name}) of a {what}")
    data = np.fromfile(path, dtype=dtype)
    return data if width == 1 else data.reshape(-1, width)


def load_npy(path: Path, what: str, columns: int | None = None) -> np.ndarray:
    """A .npy array; `columns` checks a [N, columns] shape ([N] or [N, 1] when columns is 1)."""
    require_file(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{path}: not a readable .npy array ({error})") from error
    if columns == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if columns is not None:
        expected = (1,) if columns == 1 else (2,)
        if array.ndim not in expected or (columns > 1 and array.shape[1] != columns):
            shape = "[N]" if columns == 1 else f"[N, {columns}]"
            raise DatasetError(f"{path}: {what} has shape {list(array.shape)}, expected {shape}")
    return array


def check_coord(coord: np.ndarray, source: Path | str) -> np.ndarray:
    """float32 [N, 3] with N > 0 and every value finite."""
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise DatasetError(f"{source}: coordinates have shape {list(coord.shape)}, expected [N, 3]")
    if coord.shape[0] == 0:
        raise DatasetError(f"{source}: empty scan (0 points)")
    bad = ~np.isfinite(coord).all(axis=1)
    if bad.any():
        raise DatasetError(f"{source}: {int(bad.sum())} points have NaN or Inf coordinates "
                           f"(first at index {int(np.flatnonzero(bad)[0])})")
    return np.ascontiguousarray(coord, dtype=np.float32)


def check_count(values: np.ndarray, num_points: int, source: Path | str, what: str) -> np.ndarray:
    if values.shape[0] != num_points:
        raise DatasetError(f"{source}: {values.shape[0]} {what} for {num_points} points")
    return values


def sorted_names(folder: Path, suffix: str = "", dirs: bool = False) -> list[str]:
    """Names (without `suffix`) of the files, or folders, in `folder`, sorted."""
    if dirs:
        return sorted(p.name for p in folder.iterdir() if p.is_dir())
    return sorted(p.name[: len(p.name) - len(suffix)] for p in folder.iterdir()
                  if p.is_file() and p.name.endswith(suffix))
