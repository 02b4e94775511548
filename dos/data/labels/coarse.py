"""Coarse labels: read a dataset with a shared coarse class set (COLA) instead of its own classes.

    reader = open_reader("nuscenes", root, labels="cola")    # or reader_options: {labels: cola}

The facts are YAML files in labels/cola/: a *set* file (`cola.yaml`, `cola7.yaml`) gives the coarse training
classes (`names`) and the coarse names that are ignored (`ignore`); a *map* file per reader format
(`map_<format>.yaml`) sends each raw label id of that format to a coarse name. Maps name coarse classes, not
ids, so one map serves every set.

The coarse spec replaces the reader's own `label_spec`; readers already call `label_spec.map_raw` on raw ids,
so no reader knows about coarse labels. A map must cover exactly the raw ids the reader's own spec knows: a
dataset whose raw ids differ (e.g. a custom `label_config`) is refused instead of being mapped wrongly.
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import IGNORE_INDEX, LabelSpec, _read_yaml

FOLDER = "cola"
MAP_PREFIX = "map_"


def _files() -> dict[str, object]:
    folder = importlib.resources.files("dos.data.labels") / FOLDER
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def coarse_sets() -> list[str]:
    """The coarse label sets a reader's `labels` option accepts."""
    return sorted(name for name in _files() if not name.startswith(MAP_PREFIX))


def coarse_map_formats() -> list[str]:
    """The reader formats that have a coarse map."""
    return sorted(name[len(MAP_PREFIX):] for name in _files() if name.startswith(MAP_PREFIX))


def _load(name: str) -> tuple[dict, str]:
    resource = _files()[name]
    data = _read_yaml(resource.read_text(encoding="utf-8"), str(resource))
    if "inherit" in data:
        parent, _ = _load(MAP_PREFIX + str(data.pop("inherit")))
        data = {**parent, **data}
    return data, str(resource)


def load_coarse_set(labels: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training class names, ignored coarse names) of the coarse set `labels`."""
    if not isinstance(labels, str) or labels not in coarse_sets():
        raise DatasetError(f"reader option labels={labels!r}: not a coarse label set; known: "
                           f"{', '.join(coarse_sets())} (leave the option out for the dataset's own classes)")
    data, source = _load(labels)
    names, ignore = data.get("names"), data.get("ignore") or []
    if not isinstance(names, list) or not names or not isinstance(ignore, list):
        raise DatasetError(f"{source}: a coarse set needs a non-empty list `names` and a list `ignore`")
    if len(set(names) | set(ignore)) != len(names) + len(ignore):
        raise DatasetError(f"{source}: a coarse name appears twice in `names` and `ignore`")
    return tuple(map(str, names)), tuple(map(str, ignore))


def load_coarse_map(format_name: str) -> tuple[dict[int, str], str]:
    """({raw id: coarse name}, source file) of one reader format."""
    if format_name not in coarse_map_formats():
        raise DatasetError(f"reader option labels: no coarse label map for format {format_name!r}; maps exist for "
                           f"{', '.join(coarse_map_formats())}")
    data, source = _load(MAP_PREFIX + format_name)
    mapping = data.get("coarse")
    if not isinstance(mapping, dict) or not mapping:
        raise DatasetError(f"{source}: a coarse map needs a non-empty mapping `coarse` {{raw id: coarse name}}")
    if not all(isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 for raw in mapping):
        raise DatasetError(f"{source}: the raw ids of `coarse` must be integers >= 0")
    return {int(raw): str(name) for raw, name in mapping.items()}, source


def coarse_label_spec(labels: object, format_name: str, fine: LabelSpec) -> LabelSpec:
    """The coarse label spec `labels` for a reader of `format_name` whose own spec is `fine`."""
    names, ignore = load_coarse_set(labels)
    mapping, source = load_coarse_map(format_name)
    unknown = sorted({name for name in mapping.values()} - set(names) - set(ignore))
    if unknown:
        raise DatasetError(f"{source}: coarse names {unknown} are neither classes nor ignored in set {labels!r}")
    if fine.lookup is None or fine.known is None:
        raise DatasetError(f"format {format_name!r}: label spec {fine.name!r} has no raw-id map to make coarse")
    known = set(np.flatnonzero(fine.known).tolist())
    missing, extra = sorted(known - set(mapping)), sorted(set(mapping) - known)
    if missing or extra:
        raise DatasetError(f"{source}: the coarse map does not match the raw ids of label spec {fine.name!r} "
                           f"(raw ids without a coarse class: {missing[:10]}; raw ids the spec does not know: "
                           f"{extra[:10]})")
    lookup = np.full(len(fine.lookup), IGNORE_INDEX, dtype=np.int64)
    for raw, name in mapping.items():
        lookup[raw] = names.index(name) if name in names else IGNORE_INDEX
    return LabelSpec(name=f"{labels}/{fine.name}", names=names, lookup=lookup, known=fine.known.copy(),
                     raw_names=dict(fine.raw_names), splits=dict(fine.splits))
