"""Several datasets as one training set (joint pretraining: the paper's Nu-SK-Wa / DOS* runs).

`SourceMixture` concatenates SceneDatasets: index i is scene i of the concatenation, wrapped modulo the total
(`dos.engine.steps.epoch_order` gives a scene that an epoch draws twice the index i + total, so that its
second draw gets its own sample randomness). Each sample carries `source` (the position of its dataset) and,
when the source sets one, `grid_size` (its input voxel, metres), and its features pass through the source's
`FeatureMap`.

Why a feature map: the readers keep each dataset's own intensity convention (nuScenes intensity / 255,
SemanticKITTI remission in [0, 1], Waymo tanh(intensity), dos/data/readers/), and the sensors differ in gain,
so the same surface gives different values in different datasets. A per-source affine map with an optional
clip, `clip(feat * scale + shift)`, puts them on one scale before the shared input layer sees them; the
mapping of each source is written in the run's config (data.sources[k].features), so it is part of the run's
identity and its record.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from dos.config.ranges import check_ranges
from dos.data.errors import DatasetError


@dataclass(frozen=True)
class FeatureMap:
    """feat -> clip(feat * scale + shift, clip[0], clip[1]) on every feature channel (not the xyz the
    network may prepend); clip null = no clip. The identity by default."""

    scale: float = 1.0
    shift: float = 0.0
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_ranges(self, positive=("scale",))
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError(f"clip must be (low, high) with low < high, got {self.clip}")

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.shift == 0.0 and self.clip is None

    def __call__(self, feat: torch.Tensor) -> torch.Tensor:
        """A new tensor (cached samples are shared: never modified in place)."""
        if self.identity:
            return feat
        out = feat * self.scale + self.shift
        return out.clamp(*self.clip) if self.clip is not None else out


class SourceMixture(torch.utils.data.Dataset):
    """The concatenation of `parts` (SceneDatasets of one split), with each part's sampling weight, input voxel
    (None = the run's) and feature map. Label facts (classes, ignore index) are the parts' when they all agree."""

    def __init__(self, parts: Sequence[Any], weights: Sequence[float], grid_sizes: Sequence[float | None],
                 feature_maps: Sequence[FeatureMap]):
        if not (len(parts) == len(weights) == len(grid_sizes) == len(feature_maps)) or not parts:
            raise ValueError("SourceMixture needs one weight, grid size and feature map per part, and a part")
        self.parts, self.weights = list(parts), [float(w) for w in weights]
        self.grid_sizes, self.feature_maps = list(grid_sizes), list(feature_maps)
        self.starts = [0]
        for part in self.parts[:-1]:
            self.starts.append(self.starts[-1] + len(part))
        self.format = "mixture"
        self.split = self.parts[0].split

    @property
    def sizes(self) -> list[int]:
        return [len(part) for part in self.parts]

    @property
    def roots(self) -> list[str]:
        return [str(part.reader.root) for part in self.parts]

    def __len__(self) -> int:
        return sum(self.sizes)

    def locate(self, index: int) -> tuple[int, int]:
        """(source, index within it) of concatenated index `index` (taken modulo the total)."""
        index %= len(self)
        source = bisect.bisect_right(self.starts, index) - 1
        return source, index - self.starts[source]

    def __getitem__(self, index: int) -> dict:
        source, local = self.locate(index)
        sample = dict(self.parts[source][local])
        sample["feat"] = self.feature_maps[source](sample["feat"])
        sample["index"], sample["source"] = index % len(self), source
        if self.grid_sizes[source] is not None:
            sample["grid_size"] = float(self.grid_sizes[source])
        return sample

    def _same(self, what: str, values: list) -> Any:
        if any(value != values[0] for value in values[1:]):
            listing = "; ".join(f"{root}: {value}" for root, value in zip(self.roots, values))
            raise DatasetError(f"data.sources: the datasets disagree on {what} ({listing})")
        return values[0]

    @property
    def feat_channels(self) -> int:
        """C of `feat`, which every source must share (one input layer reads them all)."""
        return self._same("the number of feature channels", [part.feat_channels for part in self.parts])

    @property
    def num_classes(self) -> int:
        return self._same("the number of classes", [part.num_classes for part in self.parts])

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._same("the class names", [part.class_names for part in self.parts])

    @property
    def ignore_index(self) -> int:
        return self._same("the ignore index", [part.ignore_index for part in self.parts])

    @property
    def groups(self) -> dict[str, list[int]]:
        return self._same("the class frequency groups", [part.groups for part in self.parts])
