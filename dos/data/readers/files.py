"""Checked reads shared by the readers: every fault becomes a DatasetError that names the file.

Every file a reader opens goes through `open_file` (or `read_bytes` / `read_text` / `read_records` /
`load_npy`, built on it), so that an OSError (permission denied, a folder where a file belongs, an I/O
error) is told with the file's name. Every listing and every "is it there?" test goes through
`sorted_names` / `path_kind`, so that a dangling symbolic link is an error rather than a scan that
silently is not there.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import check_integer


def _dangling(path: Path) -> DatasetError:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return DatasetError(f"{path}: broken symbolic link (its target {target} does not exist)")


KIND_NAMES = {"file": "file", "dir": "folder", "other": "special file (a socket, FIFO or device)"}


def path_kind(path: Path) -> str | None:
    """"file", "dir", "other" (a socket, a device...) or None when nothing is there; a dangling symbolic
    link raises, because what it stood for is missing rather than absent by design."""
    try:
        if path.is_dir():
            return "dir"
        if path.is_file():
            return "file"
        if path.is_symlink():
            raise _dangling(path)
        return "other" if path.exists() else None
    except OSError as error:  # e.g. a parent folder that cannot be searched
        raise DatasetError(f"{path}: cannot inspect ({error.strerror or error})") from error


def has_dir(path: Path, what: str) -> bool:
    """Whether the optional folder `path` is present; a file (or a broken link) in its place is an error."""
    kind = path_kind(path)
    if kind not in (None, "dir"):
        raise DatasetError(f"{path}: {what} is a {KIND_NAMES[kind]}, not a folder")
    return kind == "dir"


def has_file(path: Path, what: str) -> bool:
    """Whether the optional file `path` is present; a folder (or a broken link) in its place is an error."""
    kind = path_kind(path)
    if kind not in (None, "file"):
        raise DatasetError(f"{path}: {what} is a {KIND_NAMES[kind]}, not a file")
    return kind == "file"


def require_dir(path: Path, what: str) -> Path:
    if not has_dir(path, what):
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not has_file(path, what):
        raise DatasetError(f"{path}: {what} not found")
    return path


@contextlib.contextmanager
def open_file(path: Path, what: str) -> Iterator[BinaryIO]:
    """The file opened for binary reading; an OSError while opening or reading it names the file."""
    require_file(path, what)
    try:
        handle = open(path, "rb")
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise DatasetError(f"{path}: cannot open the {what} ({getattr(error, 'strerror', None) or error})") from error
    with handle:
        try:
            yield handle
        except OSError as error:
            raise DatasetError(f"{path}: cannot read the {what} ({error.strerror or error})") from error


def read_bytes(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """The whole file; one larger than `max_bytes` is refused before it is read."""
    with open_file(path, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise DatasetError(f"{path}: {size} bytes is more than the {max_bytes} bytes a {what} may have")
        return handle.read()


def read_text(path: Path, what: str) -> str:
    try:
        return read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: {what} is not UTF-8 text ({error})") from error


def read_records(path: Path, dtype: str | np.dtype, width: int, what: str) -> np.ndarray:
    """A raw binary file of fixed-size records -> array [N, width] (or [N] for width 1)."""
    record = np.dtype(dtype).itemsize * width
    with open_file(path, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size % record:
            raise DatasetError(f"{path}: {size} bytes is not a multiple of the {record}-byte record "
                               f"({width} x {np.dtype(dtype).name}) of a {what}")
        data = np.fromfile(handle, dtype=dtype)
    return data if width == 1 else data.reshape(-1, width)


def load_npy(path: Path, what: str, columns: int | None = None) -> np.ndarray:
    """A .npy array; `columns` checks a [N, columns] shape ([N] or [N, 1] when columns is 1)."""
    with open_file(path, what) as handle:
        try:
            array = np.load(handle, allow_pickle=False)
        except (ValueError, EOFError) as error:
            raise DatasetError(f"{path}: not a readable .npy array ({error})") from error
        if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
            raise DatasetError(f"{path}: not a .npy array (an .npz archive?)")
    if columns == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if columns is not None:
        expected = (1,) if columns == 1 else (2,)
        if array.ndim not in expected or (columns > 1 and array.shape[1] != columns):
            shape = "[N]" if columns == 1 else f"[N, {columns}]"
            raise DatasetError(f"{path}: {what} has shape {list(array.shape)}, expected {shape}")
    return array


def load_ids(path: Path, what: str) -> np.ndarray:
    """A .npy of per-point integer ids ([N] or [N, 1]: labels, instance ids) -> int64 [N]."""
    return check_integer(load_npy(path, what, 1), path, what).astype(np.int64, copy=False)


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


def sorted_names(folder: Path, suffix: str = "", dirs: bool = False, prefix: str = "") -> list[str]:
    """Names (without `suffix`) of the files, or with `dirs` the folders, in `folder` whose names start with
    `prefix` and end with `suffix`, sorted. Entries of the other kind are skipped -- but not a broken
    symbolic link, nor a non-file named like the files sought (scans/x.bin a folder): those are errors."""
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise DatasetError(f"{folder}: cannot list the folder ({error.strerror or error})") from error
    names = []
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(suffix)):
            continue
        kind = path_kind(entry)  # raises for a broken link
        if kind == ("dir" if dirs else "file"):
            names.append(entry.name[: len(entry.name) - len(suffix)])
        elif suffix and not dirs:
            raise DatasetError(f"{entry}: a {KIND_NAMES[kind]} where a {suffix} file belongs")
    return sorted(names)
