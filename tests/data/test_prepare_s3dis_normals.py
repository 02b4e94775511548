"""Normals for raw S3DIS, estimated from the points: a synthetic room with known normals (floor, ceiling, a wall,
a sphere), written as raw annotation files -> `dos data prepare s3dis` -> the s3dis reader."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dos.cli import main
from dos.data.prepare.normals import estimate_normals
from dos.data.prepare.s3dis import prepare
from dos.data.readers.s3dis import S3disReader
from dos.errors import DosError

pytest.importorskip("scipy.spatial")  # the neighbour search; scipy comes with the workflow and dev extras

SIZE = np.array([4.0, 4.0, 3.0])  # the room: x, y in 0..4, z in 0..3; bounding-box centre (2, 2, 1.5)
SPHERE, RADIUS = np.array([3.0, 2.5, 1.0]), 0.5
EDGE = 0.3  # plane points this close to another surface have mixed neighbourhoods: not checked
COS_TOLERANCE = np.cos(np.radians(5.0))  # the worst point; the median is far below 1 degree


def surfaces(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Object file name -> (points [n, 3], true unit normals up to sign [n, 3])."""
    rng = np.random.default_rng(seed)
    floor = np.column_stack([rng.uniform(0, 4, (3000, 2)), np.zeros(3000)])
    ceiling = np.column_stack([rng.uniform(0, 4, (3000, 2)), np.full(3000, 3.0)])
    wall = np.column_stack([np.zeros(1500), rng.uniform(0, 4, 1500), rng.uniform(0, 3, 1500)])
    direction = rng.normal(size=(2500, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return {"floor_1": (floor, np.tile([0.0, 0.0, 1.0], (3000, 1))),
            "ceiling_1": (ceiling, np.tile([0.0, 0.0, 1.0], (3000, 1))),
            "wall_1": (wall, np.tile([1.0, 0.0, 0.0], (1500, 1))),
            "clutter_1": (SPHERE + RADIUS * direction, direction)}


def write_room(raw: Path, room: str) -> None:
    folder = raw / room / "Annotations"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, (xyz, _) in surfaces().items():
        rgb = rng.integers(0, 256, (len(xyz), 3))
        lines = [f"{x:.6f} {y:.6f} {z:.6f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(xyz, rgb)]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")


def checked(xyz: np.ndarray) -> np.ndarray:
    """Points away from the planes' junctions (the box's faces meet there; the sphere touches nothing)."""
    inside = (xyz > EDGE) & (xyz < SIZE - EDGE)
    return inside.sum(axis=1) >= 2  # on one face (one coordinate at its bound), clear of the other faces


@pytest.fixture
def prepared(tmp_path) -> Path:
    raw = tmp_path / "raw"
    write_room(raw, "Area_1/office_1")
    out = tmp_path / "out"
    prepare(raw, out, log=lambda *_: None)
    return out


def test_estimated_normals_match_the_surfaces_up_to_sign(prepared):
    scan = S3disReader(prepared).load("train", "Area_1/office_1")
    assert scan.feat.shape == (10000, 6) and scan.feat.dtype == np.float32
    assert scan.extra["feat_names"] == ["r", "g", "b", "nx", "ny", "nz"]  # colour, then normal, as ScanNet
    normal = scan.feat[:, 3:].astype(np.float64)
    assert np.allclose(np.linalg.norm(normal, axis=1), 1.0, atol=1e-5)
    names = S3disReader(prepared).label_spec.names
    start = 0
    for name, (xyz, truth) in sorted(surfaces().items()):  # objects in file-name order
        rows = slice(start, start + len(xyz))
        start += len(xyz)
        assert {names[i] for i in scan.segment[rows]} == {name.rsplit("_", 1)[0]}
        keep = checked(xyz) if name != "clutter_1" else np.ones(len(xyz), bool)
        assert keep.sum() > len(xyz) // 2
        cosine = np.abs(np.einsum("ni,ni->n", normal[rows][keep], truth[keep]))
        assert cosine.min() > COS_TOLERANCE, f"{name}: worst angle {np.degrees(np.arccos(cosine.min())):.1f} deg"
        assert np.median(cosine) > np.cos(np.radians(1.0))


def test_normals_point_towards_the_rooms_centre(prepared):
    room = prepared / "Area_1/office_1"
    coord, normal = np.load(room / "coord.npy"), np.load(room / "normal.npy")
    assert normal.dtype == np.float32 and normal.shape == coord.shape
    centre = (coord.min(axis=0) + coord.max(axis=0)) / 2
    assert np.allclose(centre, SIZE / 2, atol=0.01)
    assert (np.einsum("ni,ni->n", normal, centre - coord) >= 0).all()
    z = coord[:, 2]
    interior = checked(coord)
    assert (normal[interior & (z == 0), 2] > 0.99).all()  # floor: up
    assert (normal[interior & (z == 3), 2] < -0.99).all()  # ceiling: down, into the room
    assert (normal[interior & (coord[:, 0] == 0), 0] > 0.99).all()  # wall at x = 0: towards +x


def test_no_normals_keeps_rgb_only(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_room(raw, "Area_1/office_1")
    out = tmp_path / "out"
    assert main(["data", "prepare", "s3dis", str(raw), str(out), "--no-normals"]) == 0
    assert not (out / "Area_1/office_1/normal.npy").exists()
    scan = S3disReader(out).load("train", "Area_1/office_1")
    assert scan.feat.shape == (10000, 3) and scan.extra["feat_names"] == ["r", "g", "b"]

    # Run again with normals (the default): the prepared room gets normal.npy, as a fresh preparation would.
    assert main(["data", "prepare", "s3dis", str(raw), str(out), "--normal-neighbours", "12"]) == 0
    assert "1 of them without normals" in capsys.readouterr().out
    coord = np.load(out / "Area_1/office_1/coord.npy")
    assert np.array_equal(np.load(out / "Area_1/office_1/normal.npy"), estimate_normals(coord, 12))
    assert S3disReader(out).load("train", "Area_1/office_1").feat.shape == (10000, 6)
    assert main(["data", "prepare", "s3dis", str(raw), str(out), "--normal-neighbours", "2"]) == 2


def test_chunks_repeated_points_and_tiny_rooms():
    rng = np.random.default_rng(3)
    plane = np.column_stack([rng.uniform(-1, 1, (500, 2)), np.full(500, 5.0)]).astype(np.float32)
    whole = estimate_normals(plane, 16)
    assert np.array_equal(estimate_normals(plane, 16, chunk=37), whole)  # chunking changes nothing
    assert np.array_equal(whole, np.tile(np.float32([0, 0, 1]), (500, 1)))  # centre in the plane: the tie, +z
    lifted = estimate_normals(np.concatenate([plane, [[0, 0, 6]]]), 16)[:-1]  # centre now above the plane
    assert (lifted[:, 2] > 0.99).all()
    lowered = estimate_normals(np.concatenate([plane, [[0, 0, 4]]]), 16)[:-1]
    assert (lowered[:, 2] < -0.99).all()
    # Every point 20 times: the neighbours are distinct positions, so the plane still has its normal.
    repeated = np.repeat(plane, 20, axis=0)
    assert np.allclose(estimate_normals(repeated, 16), np.repeat(whole, 20, axis=0), atol=1e-6)
    for n in (0, 1, 2, 5):  # fewer points than neighbours: still unit vectors
        normals = estimate_normals(plane[:n], 16)
        assert normals.shape == (n, 3) and np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    with pytest.raises(DosError, match="at least 3 neighbours"):
        estimate_normals(plane, 2)


def test_without_scipy_the_error_says_how_to_go_on(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.spatial", None)  # import scipy.spatial -> ImportError
    with pytest.raises(DosError, match=r"needs scipy .*--no-normals"):
        estimate_normals(np.zeros((4, 3), np.float32))
