"""Atomic writes: every output is written to a temporary name in the same folder, then renamed.

A reader never sees a half-written file, and a crash never destroys the previous version. Files get the
permissions of the process's umask (as `open` would give them), not mkstemp's private 0600. An OS error while
writing (full disk, no permission) is a one-line DosError naming the file; so is a torch file that cannot be read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed onto `path`, on error removed."""
    from dos.errors import DosError

    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as error:
        reason = error.strerror or str(error)
        raise DosError(f"{path}: cannot write ({reason}); the previous version, if any, is kept") from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as error:  # torch's zip writer reports a full disk as a RuntimeError
            raise OSError(str(error).splitlines()[0]) from None


def load_torch(path: str | os.PathLike, what: str = "torch file") -> Any:
    """torch.load on the CPU; a missing, unreadable, truncated or corrupt file is a DosError naming it."""
    import pickle
    import zipfile

    import torch

    from dos.errors import DosError

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise DosError(f"{path}: {what} not found") from None
    except OSError as error:
        raise DosError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, ImportError, TypeError, IndexError, UnicodeDecodeError) as error:
        raise DosError(f"{path}: not a readable {what} (truncated or corrupt: {type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''}); delete it, or re-create it with the "
                       "command that wrote it") from None
