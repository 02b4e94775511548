"""Joint training sets: concatenated sources, harmonised features, per-source voxels, checked agreement."""

from types import SimpleNamespace

import pytest
import torch

from dos.data.errors import DatasetError
from dos.data.mixture import FeatureMap, SourceMixture


class _Part:
    def __init__(self, root: str, n: int, value: float, channels: int = 1, classes: int = 3):
        self.reader, self.split = SimpleNamespace(root=root), "train"
        self.n, self.value, self.feat_channels, self.num_classes = n, value, channels, classes
        self.class_names, self.ignore_index, self.groups = tuple(map(str, range(classes))), -1, {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"coord": torch.zeros(2, 3), "feat": torch.full((2, self.feat_channels), self.value), "index": i,
                "name": f"{self.reader.root}/{i}"}


def test_samples_come_from_their_source_with_its_feature_map_and_voxel():
    mixture = SourceMixture([_Part("a", 3, 0.5), _Part("b", 2, 0.8)], [1.0, 1.0], [None, 0.1],
                            [FeatureMap(), FeatureMap(scale=1.5, shift=-0.1, clip=(0.0, 1.0))])
    assert len(mixture) == 5 and mixture.sizes == [3, 2] and mixture.feat_channels == 1
    first, last = mixture[2], mixture[4]
    assert first["source"] == 0 and first["name"] == "a/2" and "grid_size" not in first
    assert torch.equal(first["feat"], torch.full((2, 1), 0.5))
    assert last["source"] == 1 and last["name"] == "b/1" and last["grid_size"] == 0.1 and last["index"] == 4
    assert torch.allclose(last["feat"], torch.full((2, 1), 1.0))  # 0.8 * 1.5 - 0.1 = 1.1, clipped to 1
    again = mixture[4 + 5]  # a second pass over the concatenation (epoch_order's repeated draws)
    assert again["name"] == "b/1" and again["index"] == 4


def test_sources_must_agree_on_what_the_network_reads():
    mixture = SourceMixture([_Part("a", 3, 0.5), _Part("b", 2, 0.8, channels=2, classes=4)], [1.0, 1.0],
                            [None, None], [FeatureMap(), FeatureMap()])
    with pytest.raises(DatasetError, match=r"feature channels \(a: 1; b: 2\)"):
        mixture.feat_channels
    with pytest.raises(DatasetError, match="number of classes"):
        mixture.num_classes


def test_feature_maps_are_checked_and_leave_the_input_untouched():
    feat = torch.tensor([[0.2], [0.9]])
    out = FeatureMap(scale=2.0)(feat)
    assert torch.allclose(out, torch.tensor([[0.4], [1.8]])) and torch.equal(feat, torch.tensor([[0.2], [0.9]]))
    assert FeatureMap()(feat) is feat
    with pytest.raises(ValueError, match="scale"):
        FeatureMap(scale=0.0)
    with pytest.raises(ValueError, match="clip"):
        FeatureMap(clip=(1.0, 0.0))
