"""Raw nuScenes v1.0 tables + lidarseg read straight into the official train/val splits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dos.cli import main
from dos.data.errors import DatasetError
from dos.data.readers.nuscenes import NuScenesReader
from dos.data.splits import load_split_lists

# Real lidarseg category rows (v1.0 category.json: token, name, description, index) for the classes used below.
CATEGORIES = {0: "noise", 9: "movable_object.barrier", 17: "vehicle.car", 24: "flat.driveable_surface",
              30: "static.vegetation", 31: "vehicle.ego"}


def test_official_split_lists():
    lists = load_split_lists("nuscenes")
    trainval = lists["v1.0-trainval"]
    assert list(trainval) == ["train", "val"]
    assert len(trainval["train"]) == 700 and len(trainval["val"]) == 150
    assert len(set(trainval["train"])) == 700 and len(set(trainval["val"])) == 150
    assert not set(trainval["train"]) & set(trainval["val"])
    assert not (set(trainval["train"]) | set(trainval["val"])) & set(lists["v1.0-test"]["test"])
    assert len(lists["v1.0-test"]["test"]) == 150
    assert lists["v1.0-mini"] == {"train": ["scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796",
                                            "scene-1077", "scene-1094", "scene-1100"],
                                  "val": ["scene-0103", "scene-0916"]}
    # Spot checks against the devkit: the first and last scenes of each list.
    assert trainval["train"][0] == "scene-0001" and trainval["train"][-1] == "scene-1110"
    assert trainval["val"][0] == "scene-0003" and trainval["val"][-1] == "scene-1073"


def token(*parts: object) -> str:
    """A 32-hex token, as every nuScenes table uses."""
    return hashlib.md5(repr(parts).encode()).hexdigest()


def write_raw_release(root: Path, scenes: dict[str, list[list[int]]], version: str = "v1.0-trainval") -> dict:
    """The raw v1.0 release with nuScenes-lidarseg unpacked over it: scene -> one label list per key frame.
    Returns {sample token: (scene, labels)}. Every record carries the official fields of its table."""
    tables = root / version
    tables.mkdir(parents=True)
    (root / "samples/LIDAR_TOP").mkdir(parents=True)
    (root / "sweeps/LIDAR_TOP").mkdir(parents=True)
    (root / "lidarseg" / version).mkdir(parents=True)
    rows: dict[str, list] = {"scene": [], "sample": [], "sample_data": [], "lidarseg": [], "category": []}
    made = {}
    rng = np.random.default_rng(0)
    stamp = 1532402927647951
    for scene, frames in scenes.items():
        scene_token = token("scene", scene)
        samples = [token("sample", scene, i) for i in range(len(frames))]
        rows["scene"].append({"token": scene_token, "log_token": token("log", scene), "nbr_samples": len(frames),
                              "first_sample_token": samples[0], "last_sample_token": samples[-1], "name": scene,
                              "description": "Night, big street, bus stop"})
        for i, (sample, labels) in enumerate(zip(samples, frames)):
            stamp += 500000
            rows["sample"].append({"token": sample, "timestamp": stamp, "prev": samples[i - 1] if i else "",
                                   "next": samples[i + 1] if i + 1 < len(samples) else "", "scene_token": scene_token})
            lidar, sweep, cam = token("lidar", sample), token("sweep", sample), token("cam", sample)
            name = f"n015-2018-07-24-11-22-45+0800__LIDAR_TOP__{stamp}.pcd.bin"
            n = len(labels)
            points = np.concatenate([rng.uniform(-30, 30, (n, 3)), rng.uniform(0, 255, (n, 1)),
                                     rng.integers(0, 32, (n, 1))], axis=1).astype(np.float32)
            points.tofile(root / "samples/LIDAR_TOP" / name)
            points.tofile(root / "sweeps/LIDAR_TOP" / name.replace(str(stamp), str(stamp + 50000)))
            np.asarray(labels, np.uint8).tofile(root / "lidarseg" / version / f"{lidar}_lidarseg.bin")
            common = {"ego_pose_token": token("pose", sample), "calibrated_sensor_token": token("calib"),
                      "height": 0, "width": 0, "prev": "", "next": ""}
            rows["sample_data"] += [
                {"token": lidar, "sample_token": sample, "timestamp": stamp, "fileformat": "pcd",
                 "is_key_frame": True, "filename": f"samples/LIDAR_TOP/{name}", **common},
                {"token": sweep, "sample_token": sample, "timestamp": stamp + 50000, "fileformat": "pcd",
                 "is_key_frame": False,
                 "filename": f"sweeps/LIDAR_TOP/{name.replace(str(stamp), str(stamp + 50000))}", **common},
                {"token": cam, "sample_token": sample, "timestamp": stamp, "fileformat": "jpg", "is_key_frame": True,
                 "filename": f"samples/CAM_FRONT/n015-2018-07-24-11-22-45+0800__CAM_FRONT__{stamp}.jpg",
                 **{**common, "height": 900, "width": 1600}},
            ]
            rows["lidarseg"].append({"token": token("seg", sample), "sample_data_token": lidar,
                                     "filename": f"lidarseg/{version}/{lidar}_lidarseg.bin"})
            made[sample] = (scene, labels)
    rows["category"] = [{"token": token("category", index), "name": name, "description": "", "index": index}
                        for index, name in CATEGORIES.items()]
    for table, records in rows.items():
        (tables / f"{table}.json").write_text(json.dumps(records, indent=0))
    return made


def test_raw_trainval_reads_into_the_official_splits(tmp_path, capsys):
    # scene-0001 and scene-0002 are official train scenes, scene-0003 an official val scene.
    made = write_raw_release(tmp_path, {"scene-0001": [[17, 17, 24], [30, 0]], "scene-0003": [[9, 31, 24, 24]],
                                        "scene-0002": [[24]]})
    reader = NuScenesReader(tmp_path)
    assert reader.splits() == ["train", "val"]
    by_split = {split: set(reader.scan_ids(split)) for split in reader.splits()}
    assert by_split["train"] == {s for s, (scene, _) in made.items() if scene in ("scene-0001", "scene-0002")}
    assert by_split["val"] == {s for s, (scene, _) in made.items() if scene == "scene-0003"}
    expected = {(17, 17, 24): [3, 3, 10], (30, 0): [15, -1], (9, 31, 24, 24): [0, -1, 10, 10], (24,): [10]}
    for split, samples in by_split.items():
        for sample in samples:
            scan = reader.load(split, sample)
            assert scan.segment.tolist() == expected[tuple(made[sample][1])]
            assert scan.extra["raw_segment"].tolist() == made[sample][1]

    assert main(["data", "summary", str(tmp_path), "--format", "nuscenes", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {split: entry["scans"] for split, entry in summary["splits"].items()} == {"train": 3, "val": 1}
    assert summary["splits"]["val"]["classes"]["barrier"] == 1


def test_raw_tables_outside_the_official_lists(tmp_path):
    write_raw_release(tmp_path, {"scene-0001": [[17]], "scene-9999": [[24]]})
    with pytest.raises(DatasetError, match=r"scene.json: scenes scene-9999 are in none of the official v1.0-trainval"):
        NuScenesReader(tmp_path)


def test_a_version_without_official_lists_is_one_split(tmp_path):
    write_raw_release(tmp_path, {"scene-0001": [[17]], "scene-9999": [[24]]}, version="v1.0-custom")
    reader = NuScenesReader(tmp_path)
    assert reader.splits() == ["all"] and len(reader.scan_ids("all")) == 2


def test_a_category_numbering_other_than_the_label_spec_is_refused(tmp_path):
    write_raw_release(tmp_path, {"scene-0001": [[17]]})
    path = tmp_path / "v1.0-trainval/category.json"
    rows = json.loads(path.read_text())
    rows[2]["index"] = 18  # vehicle.car numbered as vehicle.construction
    path.write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match=r"category.json: category 'vehicle.car' has index 18"):
        NuScenesReader(tmp_path)
