"""The scenes of one dataset split as a torch Dataset, and the collate function of offset batches.

Sample contract (what `SceneDataset[i]` returns, before any `transform`):

    coord    FloatTensor [N, 3]   x, y, z in metres, as the reader gives them
    feat     FloatTensor [N, C]   the reader's per-point features (C = `feat_channels`)
    segment  LongTensor  [N]      training ids 0..num_classes-1, -1 (`ignore_index`) = ignore; absent when the
                                  split is unlabelled. With `annotations`, only the listed points keep their
                                  label and every other point is -1.
    name     str                  the scan id (what `scenes=` lists and subset files hold)
    index    int                  the sample's position in the dataset
    boxes    dos.data.boxes.Boxes the scan's 3D boxes in the frame of `coord`; only when the reader has them
    ego_pose FloatTensor [4, 4]   the scan's frame -> the dataset's world frame; only when the reader has it

`collate_points` concatenates samples into one Pointcept-style offset batch:

    coord [sum N, 3], feat [sum N, C], segment [sum N] (when every sample has it), grid_coord [sum N, 3]
    (when every sample has it, e.g. after grid sampling), offset LongTensor [B] cumulative point counts
    (offset[-1] = total), names list[str], index LongTensor [B]; any other key is gathered into a list.

Scenes are read on access (the reader checks every file); `cache=True` keeps the loaded samples in memory,
which suits the small mini-scale scenes. With DataLoader workers every worker holds its own cache. Cached
tensors are shared between accesses: a `transform` must return new tensors rather than modify them in place.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dos.data.errors import DatasetError
from dos.data.labels import GROUPS

POINT_KEYS = ("coord", "feat", "segment", "grid_coord")


class SceneDataset(torch.utils.data.Dataset):
    """One split of a dataset on disk (any format of `dos.data.readers.READERS`).

    scenes:      the scan ids to use, in this order (e.g. a label-efficiency subset), or the path of a scene
                 list file (one scan id per line); default: every scan of the split. Unknown ids raise.
    annotations: limited annotations: {scan id: int64 point indices} or the path of such an `.npz`
                 (`dos data subsets`); every point not listed gets -1. Every used scene must be listed.
    max_scenes:  keep only the first `max_scenes` scenes (after `scenes`).
    transform:   applied to each sample dict after loading (and after the cache).
    """

    def __init__(self, format: str, root: str | os.PathLike, split: str, *,
                 reader_options: Mapping[str, Any] | None = None,
                 scenes: Sequence[str] | str | os.PathLike | None = None,
                 annotations: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
                 max_scenes: int | None = None, cache: bool = False,
                 transform: Callable[[dict], dict] | None = None):
        from dos.data.readers import check_split, open_reader
        from dos.data.subsets import read_annotations, read_scene_list

        self.format = format
        self.split = split
        self.reader = open_reader(format, root, **dict(reader_options or {}))
        check_split(self.reader, split)
        available = self.reader.scan_ids(split)
        if scenes is None:
            ids = list(available)
        else:
            source = scenes if isinstance(scenes, (str, os.PathLike)) else None
            ids = read_scene_list(scenes) if source is not None else [str(s) for s in scenes]
            missing = sorted(set(ids) - set(available))
            if missing:
                where = f"{source}: " if source is not None else ""
                raise DatasetError(f"{where}{len(missing)} scene(s) not in split {split!r} of {self.reader.root}: "
                                   f"{', '.join(missing[:5])}")
        if max_scenes is not None:
            ids = ids[:max(0, int(max_scenes))]
        if not ids:
            raise DatasetError(f"{self.reader.root}: no scenes selected from split {split!r}")
        self.scan_ids: list[str] = ids
        self.annotations: dict[str, np.ndarray] | None = None
        if annotations is not None:
            source = annotations if isinstance(annotations, (str, os.PathLike)) else "annotations"
            table = read_annotations(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
            missing = [scan_id for scan_id in ids if scan_id not in table]
            if missing:
                raise DatasetError(f"{source}: no annotations for {len(missing)} scene(s): {', '.join(missing[:5])}")
            self.annotations = {scan_id: np.asarray(table[scan_id], dtype=np.int64) for scan_id in ids}
        self.transform = transform
        self._cache: dict[int, dict] | None = {} if cache else None
        self._feat_channels: int | None = None

    # -- label facts --------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.reader.label_spec.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.reader.label_spec.names

    @property
    def ignore_index(self) -> int:
        return self.reader.label_spec.ignore_index

    @property
    def groups(self) -> dict[str, list[int]]:
        """{"head": [class ids], "common": [...], "tail": [...]} for datasets with frequency groups, else {}."""
        spec = self.reader.label_spec
        if not spec.groups:
            return {}
        position = {name: i for i, name in enumerate(spec.names)}
        return {group: sorted(position[name] for name in spec.groups[group]) for group in GROUPS}

    @property
    def feat_channels(self) -> int:
        """C of `feat` (read from the first scene, once)."""
        if self._feat_channels is None:
            self._feat_channels = int(self._load(0)["feat"].shape[1])
        return self._feat_channels

    # -- samples ------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scan_ids)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"scene {index} out of range for {len(self)} scenes")
        sample = dict(self._load(index % len(self)))
        return self.transform(sample) if self.transform is not None else sample

    def _load(self, index: int) -> dict:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        scan_id = self.scan_ids[index]
        scan = self.reader.load(self.split, scan_id)
        sample = {"coord": torch.from_numpy(np.ascontiguousarray(scan.coord, dtype=np.float32)),
                  "feat": torch.from_numpy(np.ascontiguousarray(scan.feat, dtype=np.float32)),
                  "name": scan_id, "index": index}
        if "boxes" in scan.extra:
            sample["boxes"] = scan.extra["boxes"]
        if "ego_pose" in scan.extra:
            sample["ego_pose"] = torch.from_numpy(np.asarray(scan.extra["ego_pose"], dtype=np.float32))
        if scan.segment is not None:
            segment = np.asarray(scan.segment, dtype=np.int64)
            if self.annotations is not None:
                segment = self._limit(segment, self.annotations[scan_id], scan_id)
            sample["segment"] = torch.from_numpy(segment)
        elif self.annotations is not None:
            raise DatasetError(f"{self.reader.root}: annotations given for split {self.split!r}, which is unlabelled")
        if self._cache is not None:
            self._cache[index] = sample
        return sample

    def _limit(self, segment: np.ndarray, keep: np.ndarray, scan_id: str) -> np.ndarray:
        """The labels of the `keep` points only; -1 elsewhere."""
        if keep.size and (keep.min() < 0 or keep.max() >= len(segment)):
            raise DatasetError(f"annotations of {scan_id}: point indices outside 0..{len(segment) - 1}")
        limited = np.full_like(segment, self.ignore_index)
        limited[keep] = segment[keep]
        return limited


def collate_points(samples: Sequence[dict]) -> dict:
    """Concatenate samples into an offset batch (see the module docstring for the keys)."""
    if not samples:
        raise ValueError("collate_points needs at least one sample")
    counts = [int(sample["coord"].shape[0]) for sample in samples]
    batch: dict[str, Any] = {}
    for key in POINT_KEYS:
        present = [key in sample for sample in samples]
        if all(present):
            batch[key] = torch.cat([sample[key] for sample in samples])
        elif any(present):
            raise ValueError(f"collate_points: {sum(present)} of {len(samples)} samples have {key!r}")
    batch["offset"] = torch.cumsum(torch.tensor(counts, dtype=torch.int64), 0)
    batch["names"] = [sample.get("name") for sample in samples]
    if all("index" in sample for sample in samples):
        batch["index"] = torch.tensor([int(sample["index"]) for sample in samples], dtype=torch.int64)
    for key in samples[0]:
        if key not in POINT_KEYS and key not in ("name", "index"):
            batch[key] = [sample.get(key) for sample in samples]
    return batch
