"""`dos data prepare scannet RAW OUT`: raw ScanNet v2 -> Pointcept's layout, read by the `scannet` and
`scannet200` readers.

RAW is the download of ScanNet's download-scannet.py:

    RAW/scans/sceneXXXX_XX/          sceneXXXX_XX_vh_clean_2.ply                 (mesh: x, y, z, red, green, blue,
                                                                                   alpha; faces)
                                     sceneXXXX_XX_vh_clean_2.0.010000.segs.json  (segIndices: a segment per vertex)
                                     sceneXXXX_XX.aggregation.json               (segGroups: objectId, label,
                                                                                   segments)
    RAW/scans_test/sceneXXXX_XX/     sceneXXXX_XX_vh_clean_2.ply                 (unlabelled)
    RAW/scannetv2-labels.combined.tsv                                            (or --labels PATH)

OUT/{train,val,test}/sceneXXXX_XX/ gets, per mesh vertex:

    coord.npy     float32 [N, 3]   the vertex positions (not axis-aligned, as Pointcept)
    color.npy     uint8 [N, 3]     red, green, blue
    normal.npy    float32 [N, 3]   area-weighted vertex normals of the mesh faces, unit length
                                   (a vertex on no face of non-zero area gets 0, 0, 0)
    segment20.npy int16 [N]        the tsv's nyu40id through scannet20.yaml (20 classes), else -1
    segment200.npy int16 [N]       the tsv's id through scannet200.yaml (ScanNet200's 200 classes), else -1
    instance.npy  int16 [N]        the segGroup's objectId, -1 where no group covers the vertex

A segGroup's label is looked up by the tsv's raw_category; a label the tsv does not know gives -1 in both
segment files (as Pointcept and ScanNet's own scripts do). Where groups overlap, the later group wins. The
split of each scene comes from the official lists (dos/data/splits/scannet.yaml); a scene in none of them
is an error. test scenes get no segment or instance file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.labels import IGNORE_INDEX, load_label_spec
from dos.data.prepare.output import convert_all, room_done, write_room
from dos.data.readers.files import has_dir, read_text, require_dir, require_file, sorted_names
from dos.data.readers.ply import read_ply_triangles
from dos.data.splits import load_split_lists, split_of

LABEL_TABLE = "scannetv2-labels.combined.tsv"
LABEL_COLUMNS = ("raw_category", "id", "nyu40id")
SCAN_FOLDERS = ("scans", "scans_test")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", type=Path, help="the ScanNet v2 download (with scans/ and scans_test/)")
    parser.add_argument("out", type=Path, help="the output root: OUT/{train,val,test}/<scene>/*.npy")
    parser.add_argument("--labels", type=Path, default=None, help=f"the label table (default RAW/{LABEL_TABLE})")
    parser.add_argument("--scenes", nargs="*", default=None, help="only these scenes (default: all found)")
    parser.add_argument("--workers", type=int, default=1, help="scenes converted in parallel")


def read_label_table(path: Path) -> dict[str, tuple[int, int]]:
    """{raw_category: (ScanNet200 id, nyu40id)} from scannetv2-labels.combined.tsv."""
    reader = csv.DictReader(io.StringIO(read_text(path, "ScanNet label table")), delimiter="\t")
    missing = [column for column in LABEL_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"{path}: label table has no column {', '.join(missing)} (header {reader.fieldnames})")
    table = {}
    for line, row in enumerate(reader, start=2):
        try:
            table[row["raw_category"]] = (int(row["id"]), int(row["nyu40id"]))
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: line {line}: id {row['id']!r} / nyu40id {row['nyu40id']!r} "
                               f"are not integers") from None
    return table


def vertex_normals(coord: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals: the sum of the adjacent faces' normals weighted by their areas.

    A face's cross product (v1 - v0) x (v2 - v0) is its normal scaled by twice its area, so summing cross
    products is the area weighting."""
    points = coord.astype(np.float64)
    corners = points[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    corner_of = faces.reshape(-1)
    total = np.stack([np.bincount(corner_of, weights=np.repeat(cross[:, axis], 3), minlength=len(points))
                      for axis in range(3)], axis=1)
    length = np.linalg.norm(total, axis=1, keepdims=True)
    return np.divide(total, length, out=np.zeros_like(total), where=length > 0).astype(np.float32)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(read_text(path, what))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: {what} is not a JSON object")
    return data


def scene_labels(folder: Path, scene: str, num_vertices: int,
                 table: dict[str, tuple[int, int]], table_path: Path) -> dict[str, np.ndarray]:
    """segment20, segment200 and instance of one annotated scene."""
    segs_path = folder / f"{scene}_vh_clean_2.0.010000.segs.json"
    groups_path = folder / f"{scene}.aggregation.json"
    seg_indices = _read_json(segs_path, "segment file").get("segIndices")
    if not isinstance(seg_indices, list) or len(seg_indices) != num_vertices:
        count = len(seg_indices) if isinstance(seg_indices, list) else "no"
        raise DatasetError(f"{segs_path}: {count} segIndices for the {num_vertices} mesh vertices")
    seg_indices = np.asarray(seg_indices, dtype=np.int64)
    groups = _read_json(groups_path, "aggregation file").get("segGroups")
    if not isinstance(groups, list):
        raise DatasetError(f"{groups_path}: no segGroups list")
    raw200 = np.zeros(num_vertices, np.int64)     # 0: no ScanNet200 id (ignored)
    nyu40 = np.zeros(num_vertices, np.int64)      # 0: unannotated
    instance = np.full(num_vertices, IGNORE_INDEX, np.int64)
    for position, group in enumerate(groups):
        if not isinstance(group, dict) or not {"label", "segments", "objectId"} <= set(group):
            raise DatasetError(f"{groups_path}: segGroup {position} lacks label, segments or objectId")
        where = np.isin(seg_indices, np.asarray(group["segments"], dtype=np.int64))
        raw200[where], nyu40[where] = table.get(group["label"], (0, 0))
        instance[where] = int(group["objectId"])
    return {
        "segment20": load_label_spec("scannet20").map_raw(nyu40, table_path).astype(np.int16),
        "segment200": load_label_spec("scannet200").map_raw(raw200, table_path).astype(np.int16),
        "instance": instance.astype(np.int16),
    }


def convert_scene(folder: Path, split: str, table: dict[str, tuple[int, int]], table_path: Path) -> dict:
    """The arrays of one scene folder."""
    scene = folder.name
    mesh_path = require_file(folder / f"{scene}_vh_clean_2.ply", "ScanNet mesh")
    vertices, faces = read_ply_triangles(mesh_path)
    missing = [name for name in ("x", "y", "z", "red", "green", "blue") if name not in vertices]
    if missing:
        raise DatasetError(f"{mesh_path}: mesh vertices have no {', '.join(missing)}")
    coord = np.stack([vertices[axis] for axis in "xyz"], axis=1).astype(np.float32)
    arrays = {"coord": coord,
              "color": np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1).astype(np.uint8),
              "normal": vertex_normals(coord, faces)}
    if split != "test":
        arrays.update(scene_labels(folder, scene, len(coord), table, table_path))
    return arrays


def _job(args: tuple[Path, Path, str, dict, Path]) -> str:
    folder, out, split, table, table_path = args
    write_room(out, f"{split}/{folder.name}", convert_scene(folder, split, table, table_path))
    return folder.name


def scene_folders(raw: Path) -> list[Path]:
    found = [raw / top / name for top in SCAN_FOLDERS if has_dir(raw / top, top)
             for name in sorted_names(raw / top, dirs=True, prefix="scene")]
    if not found:
        raise DatasetError(f"{raw}: no scene folders under {' or '.join(SCAN_FOLDERS)}/")
    return found


def prepare(raw: Path, out: Path, labels: Path | None = None, scenes: list[str] | None = None,
            workers: int = 1, log=print) -> dict[str, int]:
    """Convert every scene (or `scenes`) of RAW into OUT; returns the number of scenes per split."""
    require_dir(raw, "ScanNet download")
    table_path = labels or raw / LABEL_TABLE
    table = read_label_table(table_path)
    where = split_of(load_split_lists("scannet"))
    folders = scene_folders(raw)
    if scenes:
        unknown = sorted(set(scenes) - {folder.name for folder in folders})
        if unknown:
            raise DatasetError(f"{raw}: scenes {', '.join(unknown[:5])} not found under scans/ or scans_test/")
        folders = [folder for folder in folders if folder.name in set(scenes)]
    unlisted = [folder.name for folder in folders if folder.name not in where]
    if unlisted:
        raise DatasetError(f"{raw}: scenes {', '.join(unlisted[:5])} are in none of the official ScanNet v2 "
                           f"split lists (dos/data/splits/scannet.yaml)")
    counts: dict[str, int] = {}
    jobs = []
    for folder in folders:
        split = where[folder.name]
        counts[split] = counts.get(split, 0) + 1
        if not room_done(out, f"{split}/{folder.name}"):
            jobs.append((folder, out, split, table, table_path))
    log(f"{len(folders)} scenes ({len(folders) - len(jobs)} already prepared): "
        + ", ".join(f"{split} {n}" for split, n in sorted(counts.items())))
    convert_all(_job, jobs, out, workers, log)
    return counts


def run(args: argparse.Namespace) -> int:
    prepare(args.raw, args.out, args.labels, args.scenes, args.workers)
    return 0
