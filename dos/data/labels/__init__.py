"""Label specifications: class names, the raw-id -> training-id map, splits and frequency groups.

The facts live in YAML files beside this module (one per dataset), never as literals in code. A
label file has these keys (all but `names` optional):

    names:            training class names; the index is the training id
    learning_map:     {raw id: training id}, training id -1 = ignore
    raw_ignore_range: [lo, hi]: raw ids in lo..hi absent from learning_map are valid and ignored
    raw_names:        {raw id: name}, for reports
    splits:           {split: [folders]} where a dataset's folders do not name the split themselves
    head/common/tail: frequency groups of class names (ScanNet200)
    inherit:          another label file whose keys this one starts from

A synthetic dataset carries the same kind of file as `labels.yaml` at its root (see
`label_spec_from_file`). Coarse label sets shared across datasets (COLA) and their per-format maps live in
labels/cola/ and are applied by `coarse.py`.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from dos.data.errors import DatasetError

IGNORE_INDEX = -1
GROUPS = ("head", "common", "tail")


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class LabelSpec:
    """What the training labels of one dataset mean.

    `lookup[raw]` is the training id of raw id `raw` (-1 = ignore); `known[raw]` says whether `raw` is a
    valid raw id at all, so that a corrupt label file is caught instead of silently ignored.
    """

    name: str
    names: tuple[str, ...]
    lookup: np.ndarray | None = None
    known: np.ndarray | None = None
    raw_names: dict[int, str] = field(default_factory=dict)
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def map_raw(self, raw: np.ndarray, source: str | Path) -> np.ndarray:
        """Raw label ids -> int64 training ids; a raw id outside the map raises DatasetError naming `source`."""
        if self.lookup is None:
            raise DatasetError(f"{source}: label spec {self.name!r} has no raw-id map")
        raw = check_integer(np.asarray(raw), source, "raw label ids").astype(np.int64, copy=False)
        inside = (raw >= 0) & (raw < len(self.lookup))
        valid = inside.copy()
        valid[inside] = self.known[raw[inside]]
        if not valid.all():
            bad = np.unique(raw[~valid])
            raise DatasetError(f"{source}: raw label ids {bad[:10].tolist()} are not in the {self.name} label map")
        return self.lookup[raw]

    def check_train_ids(self, ids: np.ndarray, source: str | Path) -> np.ndarray:
        """Validate labels already stored as training ids (-1 ignore, 0..C-1) and return them as int64."""
        ids = check_integer(np.asarray(ids), source).astype(np.int64, copy=False)
        bad = (ids < self.ignore_index) | (ids >= self.num_classes)
        if bad.any():
            values = np.unique(ids[bad])
            raise DatasetError(f"{source}: label ids {values[:10].tolist()} are outside -1..{self.num_classes - 1} "
                               f"({self.name}, {self.num_classes} classes)")
        return ids

    def group_of_class(self) -> np.ndarray | None:
        """For each training id, the index in GROUPS of its frequency group (None without groups)."""
        if not self.groups:
            return None
        where = {name: GROUPS.index(group) for group, names in self.groups.items() for name in names}
        return np.array([where[name] for name in self.names], dtype=np.int64)


def check_integer(values: np.ndarray, source: str | Path, what: str = "labels") -> np.ndarray:
    """`values` unchanged when their dtype is an integer type. Labels and ids stored as floats are refused:
    a cast would turn -1.0 or 255.0 ignore marks, or 2.5, into some class without a word."""
    dtype = np.asarray(values).dtype
    if not np.issubdtype(dtype, np.integer):
        raise DatasetError(f"{source}: {what} have dtype {dtype}, expected an integer type")
    return values


def _read_yaml(text: str, source: str) -> dict:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: a label file must be a YAML mapping")
    return data


def _packaged(name: str) -> dict:
    resource = importlib.resources.files(__name__) / f"{name}.yaml"
    if not resource.is_file():
        known = sorted(p.name[:-5] for p in importlib.resources.files(__name__).iterdir() if p.name.endswith(".yaml"))
        raise DatasetError(f"no label spec named {name!r}; known: {', '.join(known)}")
    data = _read_yaml(resource.read_text(encoding="utf-8"), str(resource))
    if "inherit" in data:
        parent = _packaged(data.pop("inherit"))
        parent.update(data)
        data = parent
    return data


def _lookup_tables(learning_map: dict, raw_ignore_range: list | None, num_classes: int,
                   source: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = {int(raw): int(train) for raw, train in learning_map.items()}
    if any(raw < 0 for raw in pairs):
        raise DatasetError(f"{source}: learning_map raw ids must be >= 0")
    if any(not IGNORE_INDEX <= train < num_classes for train in pairs.values()):
        raise DatasetError(f"{source}: learning_map training ids must lie in -1..{num_classes - 1}")
    high = max(pairs, default=0)
    if raw_ignore_range:
        high = max(high, int(raw_ignore_range[1]))
    lookup = np.full(high + 1, IGNORE_INDEX, dtype=np.int64)
    known = np.zeros(high + 1, dtype=bool)
    if raw_ignore_range:
        known[int(raw_ignore_range[0]):int(raw_ignore_range[1]) + 1] = True
    raws = np.fromiter(pairs.keys(), dtype=np.int64, count=len(pairs))
    lookup[raws] = np.fromiter(pairs.values(), dtype=np.int64, count=len(pairs))
    known[raws] = True
    return lookup, known


def _class_name(entry, names: tuple[str, ...], source: str) -> str:
    """A group member given by name, or by training id (the synthetic generator writes ids)."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        if not 0 <= entry < len(names):
            raise DatasetError(f"{source}: class id {entry} in head/common/tail is outside 0..{len(names) - 1}")
        return names[entry]
    return str(entry)


def _spec_from_dict(data: dict, name: str, source: str, names_key: str = "names") -> LabelSpec:
    names = data.get(names_key)
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{source}: label file needs a non-empty list `{names_key}`")
    names = tuple(str(n) for n in names)
    lookup = known = None
    if data.get("learning_map"):
        lookup, known = _lookup_tables(data["learning_map"], data.get("raw_ignore_range"), len(names), source)
    groups = {}
    # The groups partition the 200-class list of a rooms file, or the only list of any other file.
    if all(group in data for group in GROUPS) and (names_key == "names200" or "names200" not in data):
        groups = {group: tuple(_class_name(entry, names, source) for entry in data[group]) for group in GROUPS}
        grouped = [n for group in GROUPS for n in groups[group]]
        if sorted(grouped) != sorted(names):
            raise DatasetError(f"{source}: head/common/tail must list every class of `{names_key}` exactly once")
    return LabelSpec(
        name=name,
        names=names,
        lookup=lookup,
        known=known,
        raw_names={int(k): str(v) for k, v in (data.get("raw_names") or {}).items()},
        splits={str(k): tuple(str(x) for x in v) for k, v in (data.get("splits") or {}).items()},
        groups=groups,
    )


def load_label_spec(name: str) -> LabelSpec:
    """The packaged label spec `name` (semantickitti, nuscenes, waymo, scannet20, scannet200, s3dis, parisluco3d)."""
    return _spec_from_dict(_packaged(name), name, f"label spec {name}")


def label_spec_from_file(path: str | Path, names_key: str = "names") -> LabelSpec:
    """A label spec from a YAML file, e.g. a synthetic dataset's `labels.yaml`.

    The synthetic contract: LiDAR datasets give `names` and `learning_map` {raw id: training id};
    room datasets give `names` (20 classes, stored as segment20.npy) and `names200`, `head`, `common`,
    `tail` (200 classes, segment200.npy); pass names_key="names200" for the latter.
    """
    from dos.data.readers.files import read_text  # not at the top: dos.data.readers imports this module

    path = Path(path)
    try:
        data = _read_yaml(read_text(path, "label file"), str(path))
    except yaml.YAMLError as error:
        raise DatasetError(f"{path}: not valid YAML ({error})") from error
    return _spec_from_dict(data, path.parent.name or path.stem, str(path), names_key)
