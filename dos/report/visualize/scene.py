"""One scene to draw: the data section of a config file (a run's config.yaml or a shipped config) with --set
overrides, the split and the scan id. Errors name the file or the split's root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dos.config.schema import ConfigError, apply_overrides, from_dict, load_yaml
from dos.data.errors import DatasetError
from dos.engine.common import DataConfig
from dos.errors import DosError


def read_config(path: str | os.PathLike, overrides: list[str] = ()) -> dict[str, Any]:
    """A config file's plain data with `key=value` overrides applied."""
    try:
        return apply_overrides(load_yaml(path), list(overrides))
    except ConfigError as error:
        raise DosError(f"{path}: {error}" if not str(error).startswith(str(path)) else str(error)) from None


def data_section(config: dict[str, Any], path: str | os.PathLike) -> DataConfig:
    """The `data` section of a config's plain data, validated."""
    if not isinstance(config.get("data"), dict):
        raise DosError(f"{path}: no `data` section (give a run's config.yaml or a dos config file)")
    try:
        return from_dict(DataConfig, config["data"], "data")
    except ConfigError as error:
        raise DosError(f"{path}: {error}") from None


def grid_size_of(config: dict[str, Any], default: float = 0.05) -> float:
    """The input voxel size a run used: `head.grid_size` (probe / finetune) or `views.grid_size` (pretraining)."""
    for section in ("head", "views"):
        value = (config.get(section) or {}).get("grid_size")
        if value is not None:
            return float(value)
    return default


def open_scene(data: DataConfig, split: str | None, scene: str | None) -> tuple[Any, dict]:
    """(the split's SceneDataset, the sample of `scene`; default: the split's first scene). A scene not in the
    split is a DosError naming the split's root and a few of its scenes."""
    from dos.data.dataset import SceneDataset

    split = split or data.val_split
    dataset = SceneDataset(data.format, data.root, split, reader_options=data.reader_options, cache=False)
    if scene is None:
        return dataset, dataset[0]
    if scene not in dataset.scan_ids:
        shown = ", ".join(dataset.scan_ids[:5]) + (", ..." if len(dataset.scan_ids) > 5 else "")
        raise DatasetError(f"{Path(data.root)}: scene {scene!r} is not in split {split!r} (its {len(dataset)} "
                           f"scenes: {shown})")
    return dataset, dataset[dataset.scan_ids.index(scene)]


def add_scene_arguments(parser, config_help: str) -> None:
    """--data-config / --set / --split / --scene / --grid-size / --threads, shared by the encoder commands."""
    parser.add_argument("--data-config", default=None, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the data config, e.g. --set data.root=... (repeatable)")
    parser.add_argument("--split", default=None, help="split of the scene (default: the config's data.val_split)")
    parser.add_argument("--scene", default=None, help="scan id (default: the split's first scene)")
    parser.add_argument("--grid-size", type=float, default=None,
                        help="input voxel in metres (default: the config's head.grid_size or views.grid_size)")
    add_output_arguments(parser)


def add_output_arguments(parser) -> None:
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def scene_of(args, default_config: Path) -> tuple[dict[str, Any], DataConfig, Any, dict, float]:
    """(config data, its data section, the dataset, the scene's sample, the grid size) of the scene arguments;
    the config is --data-config, else `default_config` (a run's config.yaml)."""
    path = Path(args.data_config) if args.data_config else default_config
    if not path.is_file():
        raise DosError(f"{path}: config not found" + ("" if args.data_config else
                                                        " (the run's config.yaml; give --data-config)"))
    config = read_config(path, args.overrides)
    data = data_section(config, path)
    dataset, sample = open_scene(data, args.split, args.scene)
    return config, data, dataset, sample, args.grid_size or grid_size_of(config)


def setup(threads: int) -> None:
    """Deterministic CPU torch with `threads` threads (the drawings are byte-reproducible)."""
    from dos.engine.common import setup_torch

    setup_torch(0, threads)
