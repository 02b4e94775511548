"""User-input faults that every reader must report as a DosError naming the file, never skip or cast away:
broken symbolic links, labels stored as floats, unreadable files, and a file where a folder belongs."""

from __future__ import annotations

import builtins
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dos.errors import DosError
from dos.data.readers import files, open_reader
from dos.data.summary import summarize
from tests.data.test_readers_parisluco3d import cloud, write_ply
from tests.data.test_readers_s3dis import write_room as write_s3dis_room
from tests.data.test_readers_scannet import write_room as write_scannet_room
from tests.data.test_readers_semantickitti import points, write_scan
from tests.data.test_readers_waymo import write_frame
from tests.data.test_summary import dos

MISSING = "/nonexistent/dos-test-target"


def write_nuscenes(root: Path) -> None:
    sweeps = root / "samples/LIDAR_TOP"
    sweeps.mkdir(parents=True)
    for name in ("a", "b"):
        np.random.default_rng(3).uniform(0, 10, (4, 5)).astype(np.float32).tofile(sweeps / f"{name}.pcd.bin")
    entries = [{"token": name, "lidar_points": {"lidar_path": f"{name}.pcd.bin"}} for name in ("a", "b")]
    with (root / "nuscenes_infos_train.pkl").open("wb") as handle:
        pickle.dump({"metainfo": {"version": "v1.0-mini"}, "data_list": entries}, handle)


def write_indoor_bins(root: Path, scenes: list[str]) -> None:
    """mmdet3d's indoor layout: points/, semantic_mask/ and instance_mask/ .bin files per scene."""
    for folder in ("points", "semantic_mask", "instance_mask"):
        (root / folder).mkdir(parents=True)
    for scene in scenes:
        np.random.default_rng(1).uniform(0, 5, (3, 6)).astype(np.float32).tofile(root / "points" / f"{scene}.bin")
        np.array([1, 2, 3], np.int64).tofile(root / "semantic_mask" / f"{scene}.bin")
        np.zeros(3, np.int64).tofile(root / "instance_mask" / f"{scene}.bin")


# format -> (writer of a small valid dataset, reader options, scan entries to replace by broken links)
def _kitti(root):
    for frame in (0, 1):
        write_scan(root, "08", frame, points(5), semantic=[40, 40, 50, 0, 70])


def _waymo(root):
    for frame in ("1000", "2000"):
        write_frame(root, "training", "segment-1", frame, 3, [0, 1, 2])


def _scannet(root):
    for scene in ("scene0000_00", "scene0001_00"):
        write_scannet_room(root, "train", scene, 3, seg20=[0, 1, -1], seg200=[0, 1, -1])


def _s3dis(root):
    for room in ("office_1", "office_2"):
        write_s3dis_room(root, "Area_1", room, [0, 1, 2])


def _paris(root):
    for name in ("a", "b"):
        write_ply(root / "train" / f"{name}.ply", cloud(3, [40, 50, 70]))


DATASETS = {
    "semantickitti": (_kitti, {}, ["sequences/08/velodyne/000001.bin", "sequences/08/labels/000001.label",
                                   "sequences/08"]),
    "nuscenes": (write_nuscenes, {}, ["samples/LIDAR_TOP/b.pcd.bin", "nuscenes_infos_val.pkl"]),
    "waymo": (_waymo, {}, ["training/segment-1/2000", "training/segment-1/2000/segment.npy", "training"]),
    "scannet": (_scannet, {}, ["train/scene0001_00", "train/scene0001_00/normal.npy", "train"]),
    "scannet-mmdet3d": (lambda root: write_indoor_bins(root, ["scene0000_00", "scene0001_00"]), {},
                        ["points/scene0001_00.bin", "semantic_mask"]),
    "s3dis": (_s3dis, {}, ["Area_1/office_2", "Area_1/office_2/segment.npy"]),
    "s3dis-mmdet3d": (lambda root: write_indoor_bins(root, ["Area_1_a", "Area_1_b"]), {},
                      ["points/Area_1_b.bin", "instance_mask/Area_1_b.bin"]),
    "parisluco3d": (_paris, {}, ["train/b.ply", "train"]),
}
CASES = [(name, link) for name, (_, _, links) in DATASETS.items() for link in links]


def make(name: str, root: Path):
    """Write the dataset `name` under root; return (format, options)."""
    write, options, _ = DATASETS[name]
    write(root)
    return name.split("-")[0], options


def _break_link(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    path.symlink_to(MISSING)


@pytest.mark.parametrize("name, link", CASES, ids=[f"{n}:{link}" for n, link in CASES])
def test_a_broken_symlink_is_an_error_naming_the_link(tmp_path, name, link):
    fmt, options = make(name, tmp_path)
    _break_link(tmp_path / link)
    with pytest.raises(DosError, match=re.escape(f"{tmp_path / link}: broken symbolic link")):
        summarize(open_reader(fmt, tmp_path, **options))


@pytest.mark.parametrize("fmt, dataset, link", [
    ("synthetic-lidar", "synthetic-semantickitti", "sequences/01/velodyne/000000.bin"),
    ("synthetic-lidar", "synthetic-nuscenes", "labels.yaml"),
    ("synthetic-rooms", "synthetic-scannet", "val/scene0005_00"),
    ("synthetic-rooms", "synthetic-scannet", "train/scene0000_00/segment20.npy"),
])
def test_broken_symlinks_in_synthetic_datasets(smoke_benchmark, tmp_path, fmt, dataset, link):
    root = tmp_path / dataset
    shutil.copytree(smoke_benchmark / dataset, root)
    _break_link(root / link)
    with pytest.raises(DosError, match=re.escape(f"{root / link}: broken symbolic link")):
        summarize(open_reader(fmt, root))


def test_summary_command_exits_non_zero_on_a_broken_scan_link(tmp_path):
    _kitti(tmp_path)
    link = tmp_path / "sequences/08/velodyne/000001.bin"
    _break_link(link)
    result = dos("data", "summary", "--format", "semantickitti", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert f"dos: error: {link}: broken symbolic link" in result.stderr and "Traceback" not in result.stderr


# -- labels that are not integers ------------------------------------------------------------------------------
FLOAT_LABELS = [  # (dataset, label file, values that a cast would silently turn into other classes)
    ("waymo", "training/segment-1/1000/segment.npy", [-1.0, 0.0, 2.5]),
    ("scannet", "train/scene0000_00/segment20.npy", [255.0, 1.0, -1.0]),
    ("s3dis", "Area_1/office_1/segment.npy", [-1.0, 1.0, 2.0]),
    ("scannet", "train/scene0000_00/instance.npy", [0.5, 1.0, -1.0]),
]


@pytest.mark.parametrize("name, label, values", FLOAT_LABELS, ids=[f"{n}:{p}" for n, p, _ in FLOAT_LABELS])
def test_float_labels_are_refused_naming_the_file_and_dtype(tmp_path, name, label, values):
    fmt, options = make(name, tmp_path)
    np.save(tmp_path / label, np.asarray(values, np.float32))
    with pytest.raises(DosError, match=re.escape(f"{tmp_path / label}: ") + ".*dtype float32, expected an integer"):
        summarize(open_reader(fmt, tmp_path, **options))


def test_label_spec_refuses_float_raw_ids():
    from dos.data.labels import load_label_spec

    spec = load_label_spec("semantickitti")
    with pytest.raises(DosError, match="x.label: raw label ids have dtype float64"):
        spec.map_raw(np.array([40.0, 255.0]), "x.label")
    with pytest.raises(DosError, match="y.npy: labels have dtype float64"):
        spec.check_train_ids(np.array([-1.0, 1.0]), "y.npy")


# -- unreadable files, and the wrong kind of path -----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_dataset_root_that_is_a_file_says_so(tmp_path, name):
    root = tmp_path / "root.tar"
    root.write_bytes(b"not a folder")
    with pytest.raises(DosError, match=re.escape(f"{root}: dataset root is a file, not a folder")):
        open_reader(name.split("-")[0], root)


@pytest.mark.parametrize("name, target", [
    ("semantickitti", "sequences/08/labels/000001.label"),
    ("semantickitti", "sequences/08/velodyne/000001.bin"),
    ("nuscenes", "samples/LIDAR_TOP/b.pcd.bin"),
    ("waymo", "training/segment-1/2000/strength.npy"),
    ("scannet", "train/scene0001_00/segment20.npy"),
    ("s3dis-mmdet3d", "semantic_mask/Area_1_b.bin"),
    ("parisluco3d", "train/b.ply"),
])
def test_a_folder_where_a_file_belongs_says_so(tmp_path, name, target):
    fmt, options = make(name, tmp_path)
    (tmp_path / target).unlink()
    (tmp_path / target).mkdir()
    with pytest.raises(DosError, match=re.escape(f"{tmp_path / target}: ") + ".*folder"):
        summarize(open_reader(fmt, tmp_path, **options))


DENIED = [  # one file each reader opens, by the kind of read
    ("semantickitti", "sequences/08/velodyne/000001.bin"),  # raw records
    ("semantickitti", "sequences/08/labels/000000.label"),
    ("nuscenes", "nuscenes_infos_train.pkl"),  # info pickle
    ("nuscenes", "samples/LIDAR_TOP/a.pcd.bin"),
    ("waymo", "training/segment-1/2000/coord.npy"),  # .npy
    ("scannet", "train/scene0001_00/segment20.npy"),
    ("scannet-mmdet3d", "instance_mask/scene0001_00.bin"),
    ("s3dis", "Area_1/office_2/color.npy"),
    ("s3dis-mmdet3d", "points/Area_1_a.bin"),
    ("parisluco3d", "train/a.ply"),  # PLY
]


@pytest.mark.parametrize("name, target", DENIED, ids=[f"{n}:{t}" for n, t in DENIED])
def test_permission_denied_names_the_file(tmp_path, monkeypatch, name, target):
    """Tests run as root here, where chmod 000 denies nothing: the readers' one open() is made to refuse."""
    fmt, options = make(name, tmp_path)
    denied = tmp_path / target

    def refusing_open(path, *args, **kwargs):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(files, "open", refusing_open, raising=False)
    with pytest.raises(DosError, match=re.escape(f"{denied}: cannot open the ") + ".*Permission denied"):
        summarize(open_reader(fmt, tmp_path, **options))


def test_label_config_yaml_goes_through_the_same_checks(tmp_path):
    _kitti(tmp_path)
    config = tmp_path / "labels.yaml"
    config.mkdir()
    with pytest.raises(DosError, match=re.escape(f"{config}: label file is a folder, not a file")):
        open_reader("synthetic-lidar", tmp_path)
