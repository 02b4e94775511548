"""Label-efficiency subsets: deterministic, nested, right counts; the dataset honours them; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dos.data.dataset import SceneDataset
from dos.data.errors import DatasetError
from dos.data.readers import open_reader
from dos.data.subsets import (FRACTION_PRESETS, fraction_count, fraction_file, k_shot, limited_annotations,
                              parse_fractions, read_annotations, read_scene_list, scene_fractions, write_subsets)

IDS = [f"scene{i:04d}_00" for i in range(1201)]


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _quiet(*_):
    pass


def test_fraction_counts_round_and_keep_at_least_one_scene():
    assert [fraction_count(p, 1000) for p in FRACTION_PRESETS["outdoor"]] == [1, 10, 100, 500, 1000]
    assert [fraction_count(p, 1201) for p in FRACTION_PRESETS["scannet"]] == [12, 60, 120, 240]
    assert [fraction_count(p, 3) for p in FRACTION_PRESETS["outdoor"]] == [1, 1, 1, 2, 3]
    chosen = scene_fractions(IDS, FRACTION_PRESETS["scannet"], seed=0)
    assert {p: len(ids) for p, ids in chosen.items()} == {1.0: 12, 5.0: 60, 10.0: 120, 20.0: 240}
    with pytest.raises(DatasetError, match="outside"):
        scene_fractions(IDS, [0.0], seed=0)


@pytest.mark.parametrize("preset", ["outdoor", "scannet"])
def test_fractions_are_nested_sorted_and_seeded(preset):
    chosen = scene_fractions(IDS, FRACTION_PRESETS[preset], seed=3)
    sizes = sorted(chosen, key=lambda p: len(chosen[p]))
    for small, large in zip(sizes, sizes[1:]):
        assert set(chosen[small]) <= set(chosen[large])
    assert all(ids == sorted(ids) and len(set(ids)) == len(ids) for ids in chosen.values())
    assert scene_fractions(IDS, FRACTION_PRESETS[preset], seed=3) == chosen
    assert scene_fractions(IDS, FRACTION_PRESETS[preset], seed=4) != chosen
    # The same seed draws the same scenes whichever fractions are asked for.
    assert scene_fractions(IDS, [10.0], seed=3)[10.0] == scene_fractions(IDS, [1.0, 10.0], seed=3)[10.0]


def test_k_shot_lists_are_nested_and_capped():
    shots = k_shot(IDS, [1, 5, 10], seed=0)
    assert [len(shots[k]) for k in (1, 5, 10)] == [1, 5, 10]
    assert set(shots[1]) <= set(shots[5]) <= set(shots[10])
    assert k_shot(IDS[:3], [5], seed=0)[5] == IDS[:3]


def test_limited_annotations_pick_n_labelled_points_nested():
    rng = np.random.default_rng(0)
    segments = {"a": rng.integers(-1, 5, 1000), "b": np.full(300, -1), "c": np.array([-1, 2, -1, 4, 0])}
    segments["b"][[7, 70, 170]] = 1
    tables = limited_annotations(segments, [2, 20, 200], seed=0)
    for scan_id, segment in segments.items():
        labelled = np.flatnonzero(segment >= 0)
        previous = np.array([], dtype=np.int64)
        for n in (2, 20, 200):
            picked = tables[n][scan_id]
            assert picked.dtype == np.int64 and np.all(np.diff(picked) > 0)
            assert len(picked) == min(n, len(labelled))
            assert np.isin(picked, labelled).all() and np.isin(previous, picked).all()
            previous = picked
    assert limited_annotations(segments, [20], seed=0)[20]["a"].tolist() == tables[20]["a"].tolist()
    assert limited_annotations(segments, [20], seed=1)[20]["a"].tolist() != tables[20]["a"].tolist()
    # A scene's choice does not depend on the other scenes.
    assert limited_annotations({"a": segments["a"]}, [20], seed=0)[20]["a"].tolist() == tables[20]["a"].tolist()


def test_parse_fractions_presets_and_numbers():
    assert parse_fractions(["scannet"]) == [1.0, 5.0, 10.0, 20.0]
    assert parse_fractions(["0.1", "5%", "scannet"]) == [0.1, 5.0, 1.0, 10.0, 20.0]
    with pytest.raises(DatasetError, match="preset|percentage"):
        parse_fractions(["most"])


@pytest.fixture(scope="module")
def rooms(smoke_benchmark):
    return smoke_benchmark / "synthetic-scannet"


def test_write_subsets_is_deterministic_and_seed_dependent(rooms, tmp_path):
    reader = open_reader("synthetic-rooms", rooms)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_subsets(reader, "train", tmp_path / name, seed=seed, percents=[25, 50, 100], points=[20, 50],
                      shots=[2], format_name="synthetic-rooms", log=_quiet)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a["points_20.npz"] != c["points_20.npz"] and a["subsets.json"] != c["subsets.json"]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporaries left
    manifest = json.loads(a["subsets.json"])
    assert manifest["seed"] == 0 and manifest["format"] == "synthetic-rooms" and manifest["scenes"] == 4
    assert len(manifest["fingerprint"]) == 64
    assert [(f["percent"], f["scenes"]) for f in manifest["fractions"]] == [(25, 1), (50, 2), (100, 4)]
    assert [(f["points_per_scene"], f["labelled_points"]) for f in manifest["annotations"]] == [(20, 80), (50, 200)]
    assert manifest["shots"] == [{"k": 2, "scenes": 2, "file": "shots_2.txt"}]


def test_dataset_honours_written_subsets(rooms, tmp_path):
    reader = open_reader("synthetic-rooms", rooms)
    write_subsets(reader, "train", tmp_path, seed=5, percents=[50], points=[20, 10**6], shots=[], log=_quiet)
    scenes = read_scene_list(tmp_path / fraction_file(50))
    dataset = SceneDataset("synthetic-rooms", rooms, "train", scenes=tmp_path / fraction_file(50),
                           annotations=tmp_path / "points_20.npz")
    assert dataset.scan_ids == scenes and len(dataset) == 2
    full = SceneDataset("synthetic-rooms", rooms, "train", scenes=scenes)
    table = read_annotations(tmp_path / "points_20.npz")
    for i, scan_id in enumerate(scenes):
        segment, original = dataset[i]["segment"].numpy(), full[i]["segment"].numpy()
        assert int((segment >= 0).sum()) == 20
        assert np.array_equal(np.flatnonzero(segment >= 0), table[scan_id])
        assert np.array_equal(segment[table[scan_id]], original[table[scan_id]])
    # More points asked for than a scene has labelled: all of its labels are kept.
    everything = SceneDataset("synthetic-rooms", rooms, "train", scenes=scenes,
                              annotations=tmp_path / "points_1000000.npz")
    assert all(np.array_equal(everything[i]["segment"].numpy(), full[i]["segment"].numpy()) for i in range(2))


def test_cli_end_to_end(smoke_benchmark, tmp_path):
    root = smoke_benchmark / "synthetic-nuscenes"
    dos = [sys.executable, "-m", "dos", "data", "subsets", str(root), "--format", "synthetic-lidar"]
    command = dos + ["--split", "train", "--seed", "7", "--points", "20", "100", "--shots", "1", "3"]
    for out in ("x", "y"):
        result = subprocess.run(command + ["--out", str(tmp_path / out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    files = _files(tmp_path / "x")
    assert files == _files(tmp_path / "y")
    assert set(files) == {"scenes_0.1pct.txt", "scenes_1pct.txt", "scenes_10pct.txt", "scenes_50pct.txt",
                          "scenes_100pct.txt", "points_20.npz", "points_100.npz", "shots_1.txt", "shots_3.txt",
                          "subsets.json"}
    reader = open_reader("synthetic-lidar", root)
    assert read_scene_list(tmp_path / "x" / "scenes_100pct.txt") == reader.scan_ids("train")
    assert len(read_scene_list(tmp_path / "x" / "scenes_0.1pct.txt")) == 1
    assert set(read_annotations(tmp_path / "x" / "points_20.npz")) == set(reader.scan_ids("train"))

    bad = subprocess.run(dos + ["--out", str(tmp_path / "z"), "--split", "test"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no split 'test'" in bad.stderr


@pytest.mark.parametrize("sizes, message", [
    ({"points": [20, 0]}, "n >= 1 points per scene, not 0"),
    ({"points": [-5]}, "not -5"),
    ({"shots": [0]}, "k-shot needs k >= 1, not 0"),
    ({"percents": [10, 150]}, r"scene fraction 150% is outside \(0, 100\]"),
])
def test_bad_sizes_are_refused_before_any_file_is_written(rooms, tmp_path, sizes, message):
    reader = open_reader("synthetic-rooms", rooms)
    out = tmp_path / "out"
    arguments = {"percents": [50], "points": [20], "shots": [2], **sizes}
    with pytest.raises(DatasetError, match=message):
        write_subsets(reader, "train", out, log=_quiet, **arguments)
    assert not out.exists() or not list(out.iterdir())


def test_cli_bad_points_writes_nothing(smoke_benchmark, tmp_path):
    root = smoke_benchmark / "synthetic-scannet"
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "dos", "data", "subsets", str(root), "--format", "synthetic-rooms",
                             "--out", str(out), "--points", "20", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "dos: error: limited annotations need n >= 1" in result.stderr
    assert not out.exists() or not list(out.iterdir())


def test_an_output_that_is_a_file_is_refused(rooms, tmp_path):
    out = tmp_path / "subsets"
    out.write_text("")
    with pytest.raises(DatasetError, match=f"{out}: the output is a file, not a folder"):
        write_subsets(open_reader("synthetic-rooms", rooms), "train", out, log=_quiet)
