"""Dataset readers: one module per on-disk format, all with the same small interface.

    reader = open_reader("semantickitti", "/data/semantickitti")
    for split in reader.splits():
        for scan_id in reader.scan_ids(split):
            scan = reader.load(split, scan_id)      # -> dos.data.scan.Scan

`open_reader(..., labels="cola")` gives any LiDAR format the coarse COLA classes instead of its own
(dos/data/labels/coarse.py). `READERS` is the whole list of formats: format name -> (module, class, default
options). Modules are imported only when their format is opened.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Protocol

from dos.data.errors import DatasetError
from dos.data.labels import LabelSpec
from dos.data.labels.coarse import coarse_label_spec, load_coarse_map, load_coarse_set
from dos.data.scan import Scan


class Reader(Protocol):
    """What every reader offers. Constructed as `ReaderClass(root, **options)`."""

    root: Path
    label_spec: LabelSpec

    def splits(self) -> list[str]:
        """The splits present on disk (e.g. train, val, test)."""

    def scan_ids(self, split: str) -> list[str]:
        """The scans of a split, sorted."""

    def load(self, split: str, scan_id: str) -> Scan:
        """Read and check one scan; raise DatasetError on any bad input."""


READERS: dict[str, tuple[str, str, dict]] = {
    "semantickitti": ("dos.data.readers.semantickitti", "SemanticKittiReader", {}),
    "nuscenes": ("dos.data.readers.nuscenes", "NuScenesReader", {}),
    "waymo": ("dos.data.readers.waymo", "WaymoReader", {}),
    "scannet": ("dos.data.readers.scannet", "ScanNetReader", {}),
    "scannet200": ("dos.data.readers.scannet", "ScanNetReader", {"classes": 200}),
    "s3dis": ("dos.data.readers.s3dis", "S3disReader", {}),
    "parisluco3d": ("dos.data.readers.parisluco3d", "ParisLuco3dReader", {}),
    # Generated datasets: the layout of a real one, with their own classes in <root>/labels.yaml.
    "synthetic-lidar": ("dos.data.readers.semantickitti", "SemanticKittiReader", {"label_config": "labels.yaml"}),
    "synthetic-rooms": ("dos.data.readers.scannet", "ScanNetReader", {"label_config": "labels.yaml"}),
}


def open_reader(format_name: str, root: str | Path, labels: str | None = None, **options) -> Reader:
    """The reader of `format_name` over `root`; `options` override the format's defaults.

    `labels` (e.g. "cola") reads the dataset with a coarse label set instead of its own classes, for every
    format that has a coarse map (dos/data/labels/coarse.py); None keeps the dataset's own classes.
    """
    if format_name not in READERS:
        raise DatasetError(f"unknown dataset format {format_name!r}; known: {', '.join(READERS)}")
    if labels is not None:
        load_coarse_set(labels)  # a bad value or a format without a coarse map fails before any file is read
        load_coarse_map(format_name)
    module_name, class_name, defaults = READERS[format_name]
    reader_class = getattr(importlib.import_module(module_name), class_name)
    options = {**defaults, **options}
    try:
        inspect.signature(reader_class).bind(root, **options)
    except TypeError as error:
        raise DatasetError(f"format {format_name!r}: bad reader options {sorted(options)} ({error})") from error
    reader = reader_class(root, **options)
    if labels is not None:
        reader.label_spec = coarse_label_spec(labels, format_name, reader.label_spec)
    return reader


def check_split(reader: Reader, split: str) -> None:
    if split not in reader.splits():
        raise DatasetError(f"{reader.root}: no split {split!r} (present: {', '.join(reader.splits())})")
