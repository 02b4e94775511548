"""S3DIS reader: the real mmdet3d sample and rooms written in Pointcept's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dos.data.errors import DatasetError
from dos.data.readers.s3dis import S3disReader

MMDET3D = "s3dis/mmdet3d/tests/data/s3dis"


def test_real_mmdet3d_sample(real_fixtures):
    reader = S3disReader(real_fixtures / MMDET3D)
    assert reader.splits() == ["train"]  # Area 1
    assert reader.scan_ids("train") == ["Area_1_office_2"]
    scan = reader.load("train", "Area_1_office_2")
    assert scan.num_points == 100 and scan.feat.shape == (100, 3)
    np.testing.assert_allclose(scan.coord[0], [0.151, 0.535, 2.473], rtol=1e-5)
    np.testing.assert_allclose(scan.feat[0], np.array([193, 189, 178]) / 255, rtol=1e-6)
    ids, counts = np.unique(scan.segment, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist())) == {0: 19, 1: 14, 2: 39, 3: 2, 4: 2, 5: 2, 6: 6, 7: 4, 8: 2,
                                                        9: 2, 10: 3, 12: 5}
    assert reader.label_spec.names[2] == "wall" and 27 in scan.extra["instance"]


def write_room(root: Path, area: str, room: str, segment, dtype=np.int16) -> Path:
    folder = root / area / room
    folder.mkdir(parents=True)
    n = len(segment)
    np.save(folder / "coord.npy", np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    np.save(folder / "color.npy", np.full((n, 3), 255, np.uint8))
    np.save(folder / "segment.npy", np.asarray(segment, dtype))
    return folder


def test_pointcept_layout_area5_is_val(tmp_path):
    write_room(tmp_path, "Area_1", "office_1", [0, 1, 12])
    write_room(tmp_path, "Area_2", "hallway_1", [[2], [2]])  # [N, 1] is accepted
    write_room(tmp_path, "Area_5", "conferenceRoom_1", [-1, 7, 8, 9])
    reader = S3disReader(tmp_path)
    assert reader.splits() == ["train", "val"]
    assert reader.scan_ids("train") == ["Area_1/office_1", "Area_2/hallway_1"]
    assert reader.scan_ids("val") == ["Area_5/conferenceRoom_1"]
    scan = reader.load("val", "Area_5/conferenceRoom_1")
    assert scan.segment.tolist() == [-1, 7, 8, 9] and scan.segment.dtype == np.int64
    assert (scan.feat == 1.0).all()
    assert reader.load("train", "Area_2/hallway_1").segment.tolist() == [2, 2]


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="dataset root folder not found"):
        S3disReader(tmp_path / "none")
    with pytest.raises(DatasetError, match="no Area_<n> folders"):
        S3disReader(tmp_path)
    folder = write_room(tmp_path, "Area_1", "office_1", [0, 13])
    reader = S3disReader(tmp_path)
    with pytest.raises(DatasetError, match=rf"{folder / 'segment.npy'}: label ids \[13\]"):
        reader.load("train", "Area_1/office_1")
    (folder / "segment.npy").unlink()
    with pytest.raises(DatasetError, match=f"{folder / 'segment.npy'}: label file missing"):
        reader.load("train", "Area_1/office_1")
    write_room(tmp_path, "Area_7", "office_1", [0])
    with pytest.raises(DatasetError, match="Area_7/office_1 is in no split"):
        S3disReader(tmp_path)


def test_bad_mmdet3d_files(tmp_path):
    for folder in ("points", "semantic_mask"):
        (tmp_path / folder).mkdir()
    np.zeros((3, 6), np.float32).tofile(tmp_path / "points/Area_2_room_1.bin")
    np.array([0, 1, 14], np.int64).tofile(tmp_path / "semantic_mask/Area_2_room_1.bin")
    reader = S3disReader(tmp_path)
    with pytest.raises(DatasetError, match=r"semantic_mask/Area_2_room_1\.bin: raw label ids \[14\]"):
        reader.load("train", "Area_2_room_1")
    (tmp_path / "semantic_mask/Area_2_room_1.bin").unlink()
    with pytest.raises(DatasetError, match=r"semantic_mask/Area_2_room_1\.bin: semantic mask missing"):
        reader.load("train", "Area_2_room_1")
    np.zeros(17, np.float32).tofile(tmp_path / "points/Area_2_room_1.bin")
    with pytest.raises(DatasetError, match=r"points/Area_2_room_1\.bin: 68 bytes.*24-byte record"):
        reader.load("train", "Area_2_room_1")
    np.zeros((1, 6), np.float32).tofile(tmp_path / "points/office_3.bin")
    with pytest.raises(DatasetError, match=r"office_3\.bin: name does not start with Area_"):
        S3disReader(tmp_path)
