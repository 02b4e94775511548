"""`dos data prepare scannet`: raw ScanNet v2 files written here -> the Pointcept layout -> the scannet readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dos.cli import main
from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.prepare.scannet import prepare, vertex_normals
from dos.data.readers.scannet import ScanNetReader
from dos.data.splits import load_split_lists

# The real header and real rows of scannetv2-labels.combined.tsv (its lines end in \r\r\n).
TSV = "\r\r\n".join([
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class\tModelNet40\t"
    "ModelNet10\tShapeNetCore55\tsynsetoffset\twnsynsetid\twnsynsetkey\tmpcat40\tmpcat40index",
    "1\twall\twall\t8277\t1\t12\twall\twall\tWall\t\t\t\t\tn04546855\twall.n.01\twall\t1",
    "2\tchair\tchair\t4646\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn03001627\tchair.n.01\tchair\t3",
    "22\tbooks\tbook\t1678\t23\t2\tbook\tbooks\tBooks\t\t\t\t\tn02870526\tbook.n.11\tobjects\t39",
    "3\tfloor\tfloor\t1553\t2\t5\tfloor\tfloor\tFloor\t\t\t\t\tn03365592\tfloor.n.01\tfloor\t2",
    "25\tdrawer\tdrawer\t11\t39\t6\tdrawer\totherfurniture\tFurniture\t\t\t\t\tn03233905\tdrawer.n.01\t"
    "chest_of_drawers\t13",
]) + "\r\r\n"

# A tiny mesh. 0-3: a floor square (normal +z). 4-7: an L of two triangles, (4, 5, 6) flat of area 0.5 and
# (4, 6, 7) upright of area 1, so vertices 4 and 6 get the area-weighted normal (2, 0, 1) / sqrt(5). 8: on no face.
# 9-11: a triangle of books; 12-14: a triangle of a drawer, an object the tsv does not know, and a wall.
VERTICES = np.array([[0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0],
                     [10, 0, 0], [11, 0, 0], [10, 1, 0], [10, 0, 2],
                     [5, 5, 5],
                     [20, 0, 0], [20, 1, 0], [20, 0, 1],
                     [30, 0, 0], [30, 1, 0], [30, 0, 1]], dtype=np.float32)
FACES = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [9, 10, 11], [12, 13, 14]])
SEGMENTS = [10, 10, 10, 10, 20, 20, 20, 20, 30, 40, 40, 40, 50, 60, 70]
GROUPS = [("floor", [10]), ("chair", [20]), ("books", [40]), ("drawer", [50]), ("mystery object", [60]),
          ("wall", [70])]
# Per vertex: (20-class name, 200-class name, instance), None = -1.
EXPECTED = ([("floor", "floor", 0)] * 4 + [("chair", "chair", 1)] * 4 + [(None, None, -1)]
            + [(None, "book", 2)] * 3  # books: nyu40 23 is none of the 20 classes, ScanNet200 id 22 is "book"
            + [("otherfurniture", None, 3),  # drawer: nyu40 39 -> otherfurniture; ScanNet200 id 25 is not a class
               (None, None, 4),  # a label the tsv does not know
               ("wall", "wall", 5)])


def write_ply(path: Path, vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray) -> None:
    """A binary PLY as ScanNet's *_vh_clean_2.ply: float x y z, uchar red green blue alpha; uchar/int faces."""
    header = ("ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\n"
              f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    vertex = np.zeros(len(vertices), dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
    vertex["xyz"], vertex["rgba"][:, :3], vertex["rgba"][:, 3] = vertices, colors, 255
    face = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", 3)])
    face["n"], face["v"] = 3, faces
    path.write_bytes(header.encode() + vertex.tobytes() + face.tobytes())


def write_scene(raw: Path, scene: str, test: bool = False, segments: list[int] = SEGMENTS) -> np.ndarray:
    folder = raw / ("scans_test" if test else "scans") / scene
    folder.mkdir(parents=True)
    colors = (np.arange(len(VERTICES) * 3).reshape(-1, 3) * 5 % 256).astype(np.uint8)
    write_ply(folder / f"{scene}_vh_clean_2.ply", VERTICES, colors, FACES)
    if not test:
        (folder / f"{scene}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(
            {"params": {"kThresh": "0.0001", "segMinVerts": "20"}, "sceneId": f"{scene}_vh_clean_2",
             "segIndices": segments}))
        (folder / f"{scene}.aggregation.json").write_text(json.dumps(
            {"sceneId": f"scannet.{scene}", "appId": "Aggregator.v2", "segmentsFile": f"scannet.{scene}_vh_clean_2"
             ".0.010000.segs.json", "segGroups": [{"id": i, "objectId": i, "segments": segs, "label": label}
                                                  for i, (label, segs) in enumerate(GROUPS)]}))
    return colors


@pytest.fixture
def raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    (raw / "scans").mkdir(parents=True)
    (raw / "scannetv2-labels.combined.tsv").write_bytes(TSV.encode())
    return raw


def test_official_split_lists():
    lists = load_split_lists("scannet")
    assert {split: len(scenes) for split, scenes in lists.items()} == {"train": 1201, "val": 312, "test": 100}
    assert not set(lists["train"]) & set(lists["val"]) and not (set(lists["train"]) | set(lists["val"])) & set(
        lists["test"])
    assert "scene0000_00" in lists["train"] and "scene0011_00" in lists["val"] and "scene0707_00" in lists["test"]


def test_class_id_lists_agree():
    """scannet20.yaml maps the benchmark's 20 NYU40 ids (VALID_CLASS_IDS_20) in order; scannet200.yaml maps 200
    distinct ScanNet200 ids onto 0..199 in the order of its names (VALID_CLASS_IDS_200 / CLASS_LABELS_200)."""
    s20, s200 = load_label_spec("scannet20"), load_label_spec("scannet200")
    ids20 = np.flatnonzero(s20.lookup >= 0)
    assert ids20.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
    assert s20.lookup[ids20].tolist() == list(range(20))
    ids200 = np.flatnonzero(s200.lookup >= 0)
    assert len(ids200) == 200 and s200.lookup[ids200].tolist() == list(range(200))
    assert ids200[:5].tolist() == [1, 2, 3, 4, 5] and ids200[-1] == 1191
    # the few rows of the real tsv above: id -> 200-class name
    assert [s200.names[s200.lookup[i]] for i in (1, 2, 3, 22)] == ["wall", "chair", "floor", "book"]


def test_vertex_normals_are_area_weighted_unit_vectors():
    normal = vertex_normals(VERTICES, FACES)
    assert np.allclose(normal[:4], [0, 0, 1])
    assert np.allclose(normal[[4, 6]], np.array([2, 0, 1]) / np.sqrt(5), atol=1e-6)
    assert np.allclose(normal[5], [0, 0, 1]) and np.allclose(normal[7], [1, 0, 0])
    assert np.allclose(normal[8], 0)  # on no face
    on_faces = np.unique(FACES)
    assert np.allclose(np.linalg.norm(normal[on_faces], axis=1), 1)


def test_prepare_writes_the_pointcept_layout(raw, tmp_path, capsys):
    colors = write_scene(raw, "scene0000_00")  # official train
    write_scene(raw, "scene0011_00")  # official val
    write_scene(raw, "scene0707_00", test=True)  # official test (scans_test/)
    out = tmp_path / "out"
    assert prepare(raw, out, log=lambda *_: None) == {"train": 1, "val": 1, "test": 1}
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*")) == [
        "test/scene0707_00", "train/scene0000_00", "val/scene0011_00"]
    assert not (out / ".partial").exists()
    room = out / "train/scene0000_00"
    assert np.load(room / "color.npy").dtype == np.uint8 and np.array_equal(np.load(room / "color.npy"), colors)
    assert np.array_equal(np.load(room / "coord.npy"), VERTICES)
    assert np.load(room / "segment20.npy").dtype == np.int16
    assert sorted(p.name for p in (out / "test/scene0707_00").iterdir()) == ["color.npy", "coord.npy", "normal.npy"]

    for classes, column in ((20, 0), (200, 1)):
        reader = ScanNetReader(out, classes=classes)
        assert reader.splits() == ["train", "val", "test"]
        assert reader.scan_ids("val") == ["scene0011_00"]
        scan = reader.load("train", "scene0000_00")
        names = [reader.label_spec.names[i] if i >= 0 else None for i in scan.segment]
        assert names == [row[column] for row in EXPECTED]
        assert scan.extra["instance"].tolist() == [row[2] for row in EXPECTED]
        assert scan.feat.shape == (len(VERTICES), 6)  # rgb + normal
        assert reader.load("test", "scene0707_00").segment is None

    assert main(["data", "summary", str(out), "--format", "scannet200", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"]["classes"]["book"] == 3 and summary["splits"]["train"]["ignored"] == 3

    # A rerun skips what is there.
    assert prepare(raw, out, log=lambda *_: None) == {"train": 1, "val": 1, "test": 1}


def test_prepare_command_line(raw, tmp_path):
    write_scene(raw, "scene0000_00")
    assert main(["data", "prepare", "scannet", str(raw), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out/train/scene0000_00/segment200.npy").is_file()


def test_bad_raw_input(raw, tmp_path):
    write_scene(raw, "scene9999_00")
    with pytest.raises(DatasetError, match="scene9999_00 are in none of the official ScanNet v2 split lists"):
        prepare(raw, tmp_path / "out", log=lambda *_: None)
    write_scene(raw, "scene0000_00", segments=SEGMENTS[:-1])
    with pytest.raises(DatasetError, match=r"scene0000_00_vh_clean_2.0.010000.segs.json: 14 segIndices for the "
                                           r"15 mesh vertices"):
        prepare(raw, tmp_path / "out", scenes=["scene0000_00"], log=lambda *_: None)
    assert not (tmp_path / "out/train/scene0000_00").exists()
    (raw / "scannetv2-labels.combined.tsv").write_text("id\traw_category\n1\twall\n")
    with pytest.raises(DatasetError, match="label table has no column nyu40id"):
        prepare(raw, tmp_path / "out", scenes=["scene0000_00"], log=lambda *_: None)


def test_ascii_and_binary_meshes_read_the_same(tmp_path):
    from dos.data.readers.ply import read_ply_triangles

    colors = np.full((len(VERTICES), 3), 7, np.uint8)
    write_ply(tmp_path / "b.ply", VERTICES, colors, FACES)
    lines = ["ply", "format ascii 1.0", f"element vertex {len(VERTICES)}", "property float x", "property float y",
             "property float z", "property uchar red", "property uchar green", "property uchar blue",
             f"element face {len(FACES)}", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(f"{v:g}" for v in xyz) + " 7 7 7" for xyz in VERTICES]
    lines += ["3 " + " ".join(map(str, face)) for face in FACES]
    (tmp_path / "a.ply").write_text("\n".join(lines) + "\n")
    (va, fa), (vb, fb) = read_ply_triangles(tmp_path / "a.ply"), read_ply_triangles(tmp_path / "b.ply")
    assert np.array_equal(fa, FACES) and np.array_equal(fb, FACES)
    assert all(np.array_equal(va[k], vb[k]) for k in "xyz")
    (tmp_path / "a.ply").write_text("\n".join(lines[:-1] + ["4 0 1 2 3"]) + "\n")
    with pytest.raises(DatasetError, match="a.ply: bad number in the PLY face data|not all triangles"):
        read_ply_triangles(tmp_path / "a.ply")
