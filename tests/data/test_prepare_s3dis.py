"""`dos data prepare s3dis`: raw Stanford3dDataset_v1.2 files written here -> the Pointcept layout -> the s3dis reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dos.cli import main
from dos.data.errors import DatasetError
from dos.data.prepare.s3dis import prepare
from dos.data.readers.s3dis import S3disReader

BROKEN_LINE = 323474  # Area_5/office_19/Annotations/ceiling_1.txt, as released


def write_object(raw: Path, room: str, name: str, points: np.ndarray) -> None:
    folder = raw / room / "Annotations"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{x:.6f} {y:.6f} {z:.6f} {int(r)} {int(g)} {int(b)}" for x, y, z, r, g, b in points]
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")


def points(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-5, 5, (n, 3)), rng.integers(0, 256, (n, 3))], axis=1)


@pytest.fixture
def raw(tmp_path) -> Path:
    raw = tmp_path / "Stanford3dDataset_v1.2"
    write_object(raw, "Area_1/office_1", "chair_1", points(3, 0))
    write_object(raw, "Area_1/office_1", "ceiling_1", points(2, 1))
    write_object(raw, "Area_1/office_1", "stairs_1", points(1, 2))  # counted as clutter
    write_object(raw, "Area_1/office_1", "table_2", points(4, 3))
    (raw / "Area_1/office_1/office_1.txt").write_text("0 0 0 0 0 0\n")  # the room's unlabelled copy: not read
    (raw / "Area_1/Area_1_alignmentAngle.txt").write_text("## Global alignment angle per disjoint space\n")
    write_object(raw, "Area_5/hallway_1", "floor_1", points(2, 4))
    return raw


def test_prepare_writes_the_pointcept_layout(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare(raw, out, log=lambda *_: None) == 2
    room = out / "Area_1/office_1"
    assert sorted(p.name for p in room.iterdir()) == ["color.npy", "coord.npy", "instance.npy", "normal.npy",
                                                      "segment.npy"]
    assert np.load(room / "segment.npy").dtype == np.int16 and np.load(room / "color.npy").dtype == np.uint8
    # Objects in file-name order: ceiling_1, chair_1, stairs_1, table_2.
    expected_points = np.concatenate([points(2, 1), points(3, 0), points(1, 2), points(4, 3)])
    assert np.allclose(np.load(room / "coord.npy"), expected_points[:, :3], atol=1e-5)
    assert np.array_equal(np.load(room / "color.npy"), expected_points[:, 3:].astype(np.uint8))

    reader = S3disReader(out)
    assert reader.splits() == ["train", "val"]
    assert reader.scan_ids("train") == ["Area_1/office_1"] and reader.scan_ids("val") == ["Area_5/hallway_1"]
    scan = reader.load("train", "Area_1/office_1")
    assert [reader.label_spec.names[i] for i in scan.segment] == ["ceiling"] * 2 + ["chair"] * 3 + ["clutter"] + \
        ["table"] * 4
    assert scan.extra["instance"].tolist() == [0, 0, 1, 1, 1, 2, 3, 3, 3, 3]
    assert scan.feat.shape == (10, 6)  # rgb, then the estimated normal
    assert scan.extra["feat_names"] == ["r", "g", "b", "nx", "ny", "nz"]
    assert np.array_equal(scan.feat[:, 3:], np.load(room / "normal.npy"))

    assert main(["data", "summary", str(out), "--format", "s3dis", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["val"]["classes"]["floor"] == 2 and summary["splits"]["train"]["points"] == 10


def test_the_known_broken_line_is_repaired(raw, tmp_path):
    good = "1.000000 2.000000 3.000000 10 20 30"
    lines = [good] * (BROKEN_LINE - 1) + ["-14.093000 103.0\x100000 3.112000 196 194 190"] + [good]
    path = raw / "Area_5/office_19/Annotations/ceiling_1.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    out = tmp_path / "out"
    assert main(["data", "prepare", "s3dis", str(raw), str(out), "--areas", "Area_5"]) == 0
    coord = np.load(out / "Area_5/office_19/coord.npy")
    assert coord.shape == (BROKEN_LINE + 1, 3)
    assert np.allclose(coord[BROKEN_LINE - 1], [-14.093, 103.0, 3.112])
    assert np.array_equal(np.load(out / "Area_5/office_19/color.npy")[BROKEN_LINE - 1], [196, 194, 190])
    assert not (out / "Area_1").exists()  # --areas


def test_any_other_bad_line_is_an_error_naming_file_and_line(raw, tmp_path, capsys):
    path = raw / "Area_1/office_1/Annotations/chair_1.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(".", "\x10", 1)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DatasetError, match=rf"{path}: line 2: cannot read 6 numbers \(x y z r g b\) from"):
        prepare(raw, tmp_path / "out", log=lambda *_: None)
    assert main(["data", "prepare", "s3dis", str(raw), str(tmp_path / "out")]) == 2
    assert f"{path}: line 2" in capsys.readouterr().err
    assert not (tmp_path / "out/Area_1/office_1").exists()


def test_unknown_class_and_missing_areas(raw, tmp_path):
    write_object(raw, "Area_2/storage_1", "monster_1", points(2, 5))
    with pytest.raises(DatasetError, match=r"monster_1.txt: class 'monster' is not one of the 13 S3DIS classes"):
        prepare(raw, tmp_path / "out", areas=["Area_2"], log=lambda *_: None)
    with pytest.raises(DatasetError, match="no area folder Area_9"):
        prepare(raw, tmp_path / "out", areas=["Area_9"], log=lambda *_: None)
    with pytest.raises(DatasetError, match="no Area_<n> folders"):
        prepare(tmp_path, tmp_path / "out2", log=lambda *_: None)
