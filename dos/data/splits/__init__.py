"""Official split lists shipped as data: one YAML file per dataset beside this module, its source in its header.

    nuscenes.yaml: {table version: {split: [scene names]}}   (nuscenes-devkit splits.py)
    scannet.yaml:  {split: [scene ids]}                      (ScanNet's Tasks/Benchmark/scannetv2_*.txt)

The files are facts transcribed from the datasets' own repositories; nothing here computes a split.
"""

from __future__ import annotations

import importlib.resources

import yaml

from dos.data.errors import DatasetError


def load_split_lists(name: str) -> dict:
    """The packaged split file `name` (without .yaml) as a mapping; each list of names is checked to be unique."""
    resource = importlib.resources.files(__name__) / f"{name}.yaml"
    if not resource.is_file():
        raise DatasetError(f"no packaged split lists named {name!r}")
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DatasetError(f"{resource}: a split file is a YAML mapping")
    _check_unique(data, str(resource))
    return data


def _check_unique(node: dict, source: str) -> None:
    for key, value in node.items():
        if isinstance(value, dict):
            _check_unique(value, source)
        elif not isinstance(value, list) or len(set(value)) != len(value):
            raise DatasetError(f"{source}: {key!r} must be a list of distinct names")


def split_of(lists: dict[str, list[str]]) -> dict[str, str]:
    """{name: split} from {split: [names]}; a name listed in two splits is an error (a leak between them)."""
    where: dict[str, str] = {}
    for split, names in lists.items():
        for name in names:
            if name in where:
                raise DatasetError(f"split lists: {name} is in both {where[name]!r} and {split!r}")
            where[name] = str(split)
    return where
