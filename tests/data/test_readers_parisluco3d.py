"""ParisLuco3D reader and the PLY parser, on binary and ascii PLY files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dos.data.errors import DatasetError
from dos.data.readers.parisluco3d import ParisLuco3dReader
from dos.data.readers.ply import read_ply_vertices

FIELDS = [("x", "float", "f4"), ("y", "float", "f4"), ("z", "double", "f8"), ("intensity", "uchar", "u1"),
          ("label", "uint", "u4")]


def cloud(n: int, labels) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.uniform(-30, 30, n).astype(np.float32), "y": rng.uniform(-30, 30, n).astype(np.float32),
            "z": rng.uniform(-2, 5, n), "intensity": rng.integers(0, 256, n).astype(np.uint8),
            "label": np.asarray(labels, np.uint32)}


def write_ply(path: Path, values: dict, fmt: str = "binary_little_endian", fields=FIELDS,
              before: str = "", after_face: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(values["x"])
    header = ["ply", f"format {fmt} 1.0", "comment written by a test"]
    if before:
        header += ["element camera 1", "property float f"]
    header += [f"element vertex {n}"] + [f"property {ply} {name}" for name, ply, _ in fields]
    if after_face:
        header += ["element face 1", "property list uchar int vertex_indices"]
    header.append("end_header")
    body = b""
    if fmt == "ascii":
        lines = ([before] if before else []) + [" ".join(str(values[name][i]) for name, _, _ in fields)
                                                for i in range(n)]
        body = ("\n".join(lines) + "\n" + ("3 0 1 2\n" if after_face else "")).encode()
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        if before:
            body += np.array([1.5], endian + "f4").tobytes()
        table = np.zeros(n, dtype=[(name, endian + kind) for name, _, kind in fields])
        for name, _, _ in fields:
            table[name] = values[name]
        body += table.tobytes()
        if after_face:
            body += b"\x03" + np.array([0, 1, 2], endian + "i4").tobytes()
    path.write_bytes(("\n".join(header) + "\n").encode() + body)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_ply_formats_round_trip(tmp_path, fmt):
    values = cloud(7, [40, 48, 70, 10, 0, 81, 252])
    write_ply(tmp_path / "a.ply", values, fmt, before="1.5", after_face=True)
    fields = read_ply_vertices(tmp_path / "a.ply")
    assert list(fields) == ["x", "y", "z", "intensity", "label"]
    for name in fields:
        np.testing.assert_array_equal(fields[name], values[name].astype(fields[name].dtype))
    assert fields["label"].dtype == np.uint32 and fields["z"].dtype == np.float64


def test_reader_splits_and_labels(tmp_path):
    write_ply(tmp_path / "train" / "000001.ply", cloud(5, [40, 48, 70, 10, 0]))
    write_ply(tmp_path / "val" / "000002.ply", cloud(3, [252, 81, 80]), "ascii")
    write_ply(tmp_path / "test" / "000003.ply", cloud(2, [0, 0]), fields=FIELDS[:4])
    reader = ParisLuco3dReader(tmp_path)
    assert reader.splits() == ["test", "train", "val"]
    scan = reader.load("train", "000001")
    names = reader.label_spec.names
    assert [names[i] if i >= 0 else None for i in scan.segment] == ["road", "sidewalk", "vegetation", "car", None]
    assert scan.feat.shape == (5, 1) and scan.extra["feat_names"] == ["intensity"]
    np.testing.assert_allclose(scan.coord[:, 2], cloud(5, [0] * 5)["z"].astype(np.float32))
    assert [names[i] for i in reader.load("val", "000002").segment] == ["car", "traffic-sign", "pole"]
    assert reader.load("test", "000003").segment is None


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="no .ply scans"):
        ParisLuco3dReader(tmp_path)
    path = tmp_path / "train" / "s.ply"
    write_ply(path, cloud(4, [40, 5, 40, 40]))
    reader = ParisLuco3dReader(tmp_path)
    with pytest.raises(DatasetError, match=rf"{path}: raw label ids \[5\]"):
        reader.load("train", "s")
    data = path.read_bytes()
    write_ply(path, cloud(4, [40] * 4))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DatasetError, match=f"{path}: PLY body holds"):
        reader.load("train", "s")
    values = cloud(4, [40] * 4)
    values["x"][1] = np.nan
    write_ply(path, values)
    with pytest.raises(DatasetError, match=f"{path}: 1 points have NaN"):
        reader.load("train", "s")
    write_ply(path, cloud(4, [40] * 4), fields=FIELDS[:4])
    with pytest.raises(DatasetError, match=f"{path}: no per-point label field.*'train'"):
        reader.load("train", "s")
    write_ply(path, {k: v[:0] for k, v in cloud(4, [40] * 4).items()})
    with pytest.raises(DatasetError, match=f"{path}: empty scan"):
        reader.load("train", "s")
    path.write_bytes(b"not a ply" + data)
    with pytest.raises(DatasetError, match=f"{path}: not a PLY file"):
        reader.load("train", "s")
