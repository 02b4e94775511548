"""The one error type of the dataset readers: bad input, told to the user without a traceback."""

from __future__ import annotations

from dos.errors import DosError


class DatasetError(DosError):
    """A dataset on disk is missing, malformed or inconsistent; the message names the file and the fault."""
