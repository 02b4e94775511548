"""SceneDataset and collate_points on the smoke synthetic benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dos.data.dataset import SceneDataset, collate_points
from dos.data.errors import DatasetError
from dos.data.readers import open_reader
from dos.data.subsets import write_annotations, write_scene_list
from dos.data.transforms import grid_sample

LIDAR = ("synthetic-lidar", "synthetic-nuscenes")
ROOMS = ("synthetic-rooms", "synthetic-scannet")


def _dataset(root, kind, split="train", **kwargs) -> SceneDataset:
    format_name, folder = kind
    return SceneDataset(format_name, root / folder, split, **kwargs)


@pytest.mark.parametrize("kind, channels", [(LIDAR, 1), (ROOMS, 6)])
def test_samples_have_the_contract_shapes_and_dtypes(smoke_benchmark, kind, channels):
    dataset = _dataset(smoke_benchmark, kind)
    reader = open_reader(kind[0], smoke_benchmark / kind[1])
    assert len(dataset) == len(reader.scan_ids("train"))
    assert dataset.feat_channels == channels
    assert dataset.ignore_index == -1
    assert dataset.num_classes == len(dataset.class_names) == reader.label_spec.num_classes
    for i in range(len(dataset)):
        sample = dataset[i]
        n = sample["coord"].shape[0]
        assert sample["coord"].dtype == torch.float32 and sample["coord"].shape == (n, 3)
        assert sample["feat"].dtype == torch.float32 and sample["feat"].shape == (n, channels)
        assert sample["segment"].dtype == torch.int64 and sample["segment"].shape == (n,)
        assert sample["name"] == reader.scan_ids("train")[i] and sample["index"] == i
        segment = sample["segment"]
        assert int(segment.min()) >= -1 and int(segment.max()) < dataset.num_classes
        assert (segment >= 0).any()


def test_lidar_labels_are_the_raw_ids_through_the_learning_map(smoke_benchmark):
    dataset = _dataset(smoke_benchmark, LIDAR)
    reader = dataset.reader
    for i, scan_id in enumerate(dataset.scan_ids):
        raw = reader.load("train", scan_id).extra["raw_segment"]
        expected = reader.label_spec.lookup[raw]
        assert np.array_equal(dataset[i]["segment"].numpy(), expected)
        assert np.array_equal(dataset[i]["coord"].numpy(), reader.load("train", scan_id).coord)


def test_groups_are_class_indices_of_the_200_class_rooms_and_empty_otherwise(smoke_benchmark):
    assert _dataset(smoke_benchmark, LIDAR).groups == {}
    rooms200 = _dataset(smoke_benchmark, ROOMS, reader_options={"classes": 200})
    groups = rooms200.groups
    assert list(groups) == ["head", "common", "tail"]
    assert sorted(i for ids in groups.values() for i in ids) == list(range(200))
    spec = rooms200.reader.label_spec
    assert [rooms200.class_names[i] for i in groups["tail"]] == sorted(spec.groups["tail"],
                                                                       key=rooms200.class_names.index)


def test_scenes_list_and_file_and_max_scenes(smoke_benchmark, tmp_path):
    full = _dataset(smoke_benchmark, ROOMS)
    chosen = [full.scan_ids[2], full.scan_ids[0]]
    by_list = _dataset(smoke_benchmark, ROOMS, scenes=chosen)
    assert [by_list[i]["name"] for i in range(len(by_list))] == chosen
    write_scene_list(tmp_path / "scenes.txt", chosen)
    by_file = _dataset(smoke_benchmark, ROOMS, scenes=tmp_path / "scenes.txt")
    assert by_file.scan_ids == chosen
    assert torch.equal(by_file[1]["coord"], full[0]["coord"])
    assert _dataset(smoke_benchmark, ROOMS, max_scenes=3).scan_ids == full.scan_ids[:3]
    with pytest.raises(DatasetError, match="scene0999_00"):
        _dataset(smoke_benchmark, ROOMS, scenes=["scene0999_00"])
    with pytest.raises(DatasetError, match="no split"):
        _dataset(smoke_benchmark, ROOMS, split="nosuchsplit")


def test_annotations_keep_only_the_listed_labels(smoke_benchmark, tmp_path):
    full = _dataset(smoke_benchmark, LIDAR)
    table = {}
    for i, scan_id in enumerate(full.scan_ids):
        labelled = np.flatnonzero(full[i]["segment"].numpy() >= 0)
        table[scan_id] = labelled[:: max(1, len(labelled) // 7)][:7]
    write_annotations(tmp_path / "a.npz", table)
    for annotations in (table, tmp_path / "a.npz"):
        limited = _dataset(smoke_benchmark, LIDAR, annotations=annotations)
        for i, scan_id in enumerate(full.scan_ids):
            segment, original = limited[i]["segment"], full[i]["segment"]
            kept = torch.from_numpy(table[scan_id])
            assert int((segment >= 0).sum()) == 7
            assert torch.equal(segment[kept], original[kept])
    with pytest.raises(DatasetError, match="no annotations"):
        _dataset(smoke_benchmark, LIDAR, annotations={full.scan_ids[0]: table[full.scan_ids[0]]})
    with pytest.raises(DatasetError, match="outside"):
        _dataset(smoke_benchmark, LIDAR, annotations={k: v + 10**7 for k, v in table.items()})[0]


def test_cache_reads_each_scene_once(smoke_benchmark, monkeypatch):
    dataset = _dataset(smoke_benchmark, ROOMS, cache=True)
    first = dataset[1]
    monkeypatch.setattr(dataset.reader, "load", lambda *a: (_ for _ in ()).throw(AssertionError("read again")))
    again = dataset[1]
    assert again["coord"] is first["coord"] and again["name"] == first["name"]


def test_transform_is_applied_to_each_sample(smoke_benchmark):
    def voxelise(sample: dict) -> dict:
        sampled = grid_sample(sample["coord"], 0.1)
        out = {key: value[sampled.index] for key, value in sample.items() if key in ("coord", "feat", "segment")}
        return {**sample, **out, "grid_coord": sampled.grid_coord}

    dataset = _dataset(smoke_benchmark, LIDAR, transform=voxelise)
    sample = dataset[0]
    assert sample["grid_coord"].shape == sample["coord"].shape
    assert sample["coord"].shape[0] < dataset.reader.load("train", dataset.scan_ids[0]).num_points


def test_collate_builds_offset_batches(smoke_benchmark):
    dataset = _dataset(smoke_benchmark, ROOMS)
    samples = [dataset[i] for i in range(3)]
    for sample in samples:
        sample["grid_coord"] = torch.floor(sample["coord"] / 0.05).long()
    batch = collate_points(samples)
    counts = [s["coord"].shape[0] for s in samples]
    assert batch["offset"].dtype == torch.int64
    assert batch["offset"].tolist() == np.cumsum(counts).tolist()
    assert batch["coord"].shape == (sum(counts), 3) and batch["feat"].shape == (sum(counts), 6)
    assert torch.equal(batch["segment"], torch.cat([s["segment"] for s in samples]))
    assert batch["grid_coord"].shape == (sum(counts), 3)
    assert batch["names"] == dataset.scan_ids[:3] and batch["index"].tolist() == [0, 1, 2]
    start = int(batch["offset"][0])
    assert torch.equal(batch["coord"][start:int(batch["offset"][1])], samples[1]["coord"])

    unlabelled = {k: v for k, v in samples[0].items() if k not in ("segment", "grid_coord")}
    assert "segment" not in collate_points([unlabelled, dict(unlabelled)])
    with pytest.raises(ValueError, match="segment"):
        collate_points([unlabelled, samples[1]])


def test_dataloader_with_collate(smoke_benchmark):
    dataset = _dataset(smoke_benchmark, LIDAR, cache=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=False, collate_fn=collate_points)
    batches = list(loader)
    assert len(batches) == 1
    assert int(batches[0]["offset"][-1]) == sum(dataset[i]["coord"].shape[0] for i in range(len(dataset)))


@pytest.mark.parametrize("dtype, grid_size", [(torch.float32, 0.05), (torch.float64, 0.001)])
def test_optimised_grid_sample_equals_the_straightforward_formulation(dtype, grid_size):
    """grid_sample is optimised (dos/data/transforms.py); it must stay the sort-and-count formulation, bit for
    bit, random choice included, and agree with the numpy FNV-1a reference of `dos bench gridsample`."""
    from dos.bench.gridsample import reference_grid_sample, scan_like_cloud
    from dos.data.transforms import grid_fragments, linear_keys, voxel_coords

    coord = torch.from_numpy(scan_like_cloud(20_000, seed=1)).to(dtype)
    grid = voxel_coords(coord, grid_size)
    sorted_keys, order = torch.sort(linear_keys(grid), stable=True)
    _, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    pick = starts + (torch.rand(counts.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
                     * counts).long()
    inverse = torch.empty_like(order)
    inverse[order] = torch.repeat_interleave(torch.arange(len(counts)), counts)

    sampled = grid_sample(coord, grid_size, torch.Generator().manual_seed(4))
    assert torch.equal(sampled.index, order[pick]) and torch.equal(sampled.counts, counts)
    assert torch.equal(sampled.grid_coord, grid[order[pick]]) and torch.equal(sampled.inverse, inverse)
    assert torch.equal(grid_sample(coord, grid_size).index, order[starts])
    assert all(torch.equal(f, order[starts + torch.remainder(torch.full_like(counts, j), counts)])
               for j, f in enumerate(grid_fragments(coord, grid_size)))
    _, ref_inverse, ref_counts = reference_grid_sample(coord.numpy(), grid_size, np.random.default_rng(0))
    assert np.array_equal(np.sort(ref_counts), np.sort(counts.numpy()))
    assert np.array_equal(ref_counts[ref_inverse], counts.numpy()[inverse.numpy()])
