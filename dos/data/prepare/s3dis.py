"""`dos data prepare s3dis RAW OUT`: raw S3DIS -> Pointcept's layout, read by the `s3dis` reader.

RAW is the unzipped Stanford3dDataset_v1.2 (or its Aligned_Version): RAW/Area_N/<room>/Annotations/<class>_<i>.txt,
one object per file, one point per line "x y z r g b". The room's own <room>.txt (the same points without
labels) is not read.

OUT/Area_N/<room>/ gets the objects of the room in file-name order:

    coord.npy    float32 [N, 3]
    color.npy    uint8 [N, 3]
    segment.npy  int16 [N]   the object's class among the 13 of dos/data/labels/s3dis.yaml
    instance.npy int16 [N]   the object's position in that order (0, 1, ...), as Pointcept numbers them
    normal.npy   float32 [N, 3]   unit normals ESTIMATED from the points (dos/data/prepare/normals.py: PCA of
                                  the --normal-neighbours nearest points, oriented towards the room's centre)

so the reader gives 6 features (rgb, then the normal, as for ScanNet) and the indoor models built for rgb + normal
(Table 1's ScanNet-pretrained encoder) accept the rooms. The release has no normals: Pointcept takes them from
the separate Stanford 2D-3D-S meshes (`preprocess_s3dis.py --parse_normal`), so rooms prepared here are close to,
not byte-comparable with, Pointcept's S3DIS with normals. --no-normals writes no normal.npy (3 features, rgb).
A room prepared without normal.npy is completed from its coord.npy when the command runs again with normals.
No rotation is applied (Pointcept's default; its --align_angle is not reproduced).

The raw release's conventions are data (s3dis_raw.yaml beside this module): class aliases (stairs ->
clutter) and errata, the one known malformed line (Area_5/office_19/Annotations/ceiling_1.txt line 323474),
which is repaired as documented there. Any other line that is not 6 numbers is an error naming the file,
the line number and the text.
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import yaml

from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.prepare.normals import NEIGHBOURS, estimate_normals
from dos.data.prepare.output import convert_all, room_done, write_room
from dos.data.readers.files import has_dir, load_npy, read_bytes, require_dir, sorted_names
from dos.errors import DosError

COLUMNS = 6
NOT_NUMERIC = re.compile(r"[^0-9+\-.eE \t]")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", type=Path, help="the unzipped Stanford3dDataset_v1.2 (holding Area_1 ... Area_6)")
    parser.add_argument("out", type=Path, help="the output root: OUT/Area_N/<room>/*.npy")
    parser.add_argument("--areas", nargs="*", default=None, help="only these areas, e.g. Area_5 (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="rooms converted in parallel")
    parser.add_argument("--normals", action=argparse.BooleanOptionalAction, default=True,
                        help="write normal.npy, estimated from the points (not the 2D-3D-S mesh normals); "
                             "--no-normals: rgb only, 3 features (default: normals)")
    parser.add_argument("--normal-neighbours", type=int, default=NEIGHBOURS, metavar="K",
                        help=f"neighbours of each point in the normal's PCA (default: {NEIGHBOURS})")


def raw_conventions() -> tuple[dict[str, str], set[tuple[str, int]]]:
    """(class aliases, {(file relative to RAW, 1-based line)} of the known malformed lines)."""
    resource = importlib.resources.files(__package__) / "s3dis_raw.yaml"
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    return dict(data["aliases"]), {(entry["file"], int(entry["line"])) for entry in data["errata"]}


def _parse_lines(path: Path, relative: str, text: str, errata: set[tuple[str, int]]) -> np.ndarray:
    """The slow path, taken only when the whole-file parse fails: line by line, to name the bad line (or to
    repair a known erratum)."""
    rows = []
    # split on newlines only: str.splitlines would also break at \x0b, \x1c-\x1e and \x85 and shift the numbers
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        values = _numbers(line)
        if values is None and (relative, number) in errata:
            values = _numbers(NOT_NUMERIC.sub("", line))
        if values is None:
            known = " (a known erratum, still not 6 numbers after its repair)" if (relative, number) in errata else ""
            raise DatasetError(f"{path}: line {number}: cannot read {COLUMNS} numbers (x y z r g b) from "
                               f"{line[:80]!r}{known}; correct the line in the file and run again")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, COLUMNS)


def _numbers(line: str) -> list[float] | None:
    words = line.split()
    if len(words) != COLUMNS:
        return None
    try:
        return [float(word) for word in words]
    except ValueError:
        return None


def read_annotation(path: Path, relative: str, errata: set[tuple[str, int]]) -> np.ndarray:
    """One object's points, float64 [N, 6] (x, y, z, r, g, b)."""
    text = read_bytes(path, "S3DIS annotation file").decode("latin-1")  # byte for byte: a stray byte stays visible
    if not text.strip():
        return np.zeros((0, COLUMNS))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. a ragged last line
            table = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2)
        if table.shape[1] == COLUMNS:
            return table
    except (ValueError, UserWarning):
        pass
    return _parse_lines(path, relative, text, errata)


def convert_room(raw: Path, room: str, names: tuple[str, ...], aliases: dict[str, str],
                 errata: set[tuple[str, int]]) -> dict[str, np.ndarray]:
    """The arrays of RAW/<room> (room = "Area_N/<name>")."""
    folder = require_dir(raw / room / "Annotations", "S3DIS Annotations")
    objects = sorted_names(folder, ".txt")
    coords, colors, segments, instances = [], [], [], []
    for instance, name in enumerate(objects):
        path = folder / f"{name}.txt"
        label = name.rsplit("_", 1)[0]
        label = aliases.get(label, label)
        if label not in names:
            raise DatasetError(f"{path}: class {label!r} is not one of the 13 S3DIS classes nor an alias "
                               f"({', '.join(sorted(aliases))})")
        points = read_annotation(path, f"{room}/Annotations/{name}.txt", errata)
        rgb = points[:, 3:]
        if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
            raise DatasetError(f"{path}: colours outside 0..255 (min {rgb.min():g}, max {rgb.max():g})")
        if not np.isfinite(points[:, :3]).all():
            raise DatasetError(f"{path}: NaN or Inf coordinates")
        coords.append(points[:, :3])
        colors.append(np.rint(rgb))
        segments.append(np.full(len(points), names.index(label)))
        instances.append(np.full(len(points), instance))
    if not objects or not sum(len(c) for c in coords):
        raise DatasetError(f"{folder}: no annotated points (no <class>_<i>.txt files with lines)")
    return {"coord": np.concatenate(coords).astype(np.float32), "color": np.concatenate(colors).astype(np.uint8),
            "segment": np.concatenate(segments).astype(np.int16),
            "instance": np.concatenate(instances).astype(np.int16)}


def find_rooms(raw: Path, areas: list[str] | None = None) -> list[str]:
    """"Area_N/<room>" for every room folder of the chosen areas (files beside them, e.g. alignment angles,
    are skipped)."""
    present = [name for name in sorted_names(raw, dirs=True, prefix="Area_")]
    if areas:
        unknown = sorted(set(areas) - set(present))
        if unknown:
            raise DatasetError(f"{raw}: no area folder {', '.join(unknown)} (present: {', '.join(present) or 'none'})")
        present = [area for area in present if area in areas]
    if not present:
        raise DatasetError(f"{raw}: no Area_<n> folders (is it the unzipped Stanford3dDataset_v1.2?)")
    rooms = [f"{area}/{room}" for area in present for room in sorted_names(raw / area, dirs=True)
             if has_dir(raw / area / room / "Annotations", "Annotations")]
    if not rooms:
        raise DatasetError(f"{raw}: no <room>/Annotations folders under {', '.join(present)}")
    return rooms


def _job(args: tuple[Path, Path, str, tuple[str, ...], dict, set, int | None]) -> str:
    raw, out, room, names, aliases, errata, neighbours = args
    arrays = convert_room(raw, room, names, aliases, errata)
    if neighbours:
        arrays["normal"] = estimate_normals(arrays["coord"], neighbours)
    write_room(out, room, arrays)
    return room


def _add_normals(args: tuple[Path, str, int]) -> str:
    """normal.npy for a room prepared without it, from its coord.npy (written beside, then renamed in)."""
    out, room, neighbours = args
    folder = out / room
    coord = load_npy(folder / "coord.npy", "coordinates", 3)
    partial = folder / "normal.npy.partial"
    try:
        with open(partial, "wb") as handle:
            np.save(handle, estimate_normals(coord, neighbours))
        os.replace(partial, folder / "normal.npy")
    except OSError as error:
        raise DatasetError(f"{folder / 'normal.npy'}: cannot write ({error.strerror or error})") from None
    return f"{room} (normals added)"


def prepare(raw: Path, out: Path, areas: list[str] | None = None, workers: int = 1, log=print,
            normals: bool = True, neighbours: int = NEIGHBOURS) -> int:
    """Convert every room of RAW (or of `areas`) into OUT; returns the number of rooms. With `normals`, rooms
    already prepared without normal.npy get it."""
    require_dir(raw, "S3DIS download")
    if normals and neighbours < 3:
        raise DosError(f"--normal-neighbours {neighbours}: a normal needs at least 3 neighbours per point")
    names = load_label_spec("s3dis").names
    aliases, errata = raw_conventions()
    rooms = find_rooms(raw, areas)
    done = [room for room in rooms if room_done(out, room)]
    jobs = [(raw, out, room, names, aliases, errata, neighbours if normals else None)
            for room in rooms if not room_done(out, room)]
    missing = [(out, room, neighbours) for room in done if normals and not (out / room / "normal.npy").is_file()]
    log(f"{len(rooms)} rooms ({len(done)} already prepared"
        + (f", {len(missing)} of them without normals)" if missing else ")"))
    if missing:
        convert_all(_add_normals, missing, out, workers, log)
    convert_all(_job, jobs, out, workers, log)
    return len(rooms)


def run(args: argparse.Namespace) -> int:
    prepare(args.raw, args.out, args.areas, args.workers, normals=args.normals, neighbours=args.normal_neighbours)
    return 0
