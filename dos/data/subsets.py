"""`dos data subsets`: the label-efficiency subsets of a training split, as files, deterministic from a seed.

Three kinds, each nested so that a label-efficiency curve compares like with like:

* scene fractions (`scenes_<p>pct.txt`): p% of the training scenes, at least one. One seeded permutation
  of the scan ids; a fraction takes its first round(p% x n) scenes, so a smaller fraction is a subset of
  every larger one. Defaults 0.1, 1, 10, 50, 100 % (outdoor); `--fractions scannet` gives ScanNet's
  data-efficient 1, 5, 10, 20 %.
* limited annotations (`points_<n>.npz`): every training scene, with n labelled points each (all of them
  when a scene has fewer), drawn among the scene's labelled points (label != -1). One seeded permutation
  per scene, from the seed and the scan id, so that n points are the first n of the permutation (nested)
  and a scene's choice does not depend on the other scenes. Keys: scan ids; values: sorted int64 indices.
  `SceneDataset(..., annotations=path)` sets every other point to -1.
* k-shot scene lists (`shots_<k>.txt`): k scenes for few-shot transfer, nested across k as well.

Scene lists are plain text, one scan id per line, sorted. `subsets.json` records the seed, the dataset
(format, root, reader options, split, and a fingerprint of its scan ids and point counts) and the counts.
Every file is written atomically and byte-identically for the same dataset and seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from dos.data.errors import DatasetError
from dos.data.readers.files import open_file, read_text

if TYPE_CHECKING:
    from dos.data.readers import Reader

FRACTION_PRESETS: dict[str, tuple[float, ...]] = {
    "outdoor": (0.1, 1.0, 10.0, 50.0, 100.0),
    "scannet": (1.0, 5.0, 10.0, 20.0),
}
DEFAULT_POINTS = (20, 50, 100, 200)
DEFAULT_SHOTS = (5,)
MANIFEST = "subsets.json"
FORMAT_VERSION = 1
# Stream tags: each kind of subset draws from its own random stream of the seed.
_FRACTIONS, _POINTS, _SHOTS = 1, 2, 3


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _percent_text(percent: float) -> str:
    return f"{percent:g}"


def fraction_file(percent: float) -> str:
    return f"scenes_{_percent_text(percent)}pct.txt"


def points_file(points: int) -> str:
    return f"points_{points}.npz"


def shots_file(shots: int) -> str:
    return f"shots_{shots}.txt"


# -- choosing -------------------------------------------------------------------------------------------------------
def _nested_prefixes(scan_ids: Sequence[str], sizes: Sequence[int], seed: int, tag: int) -> dict[int, list[str]]:
    """{size: the first `size` ids of one seeded permutation of the sorted ids, sorted}."""
    ids = sorted(scan_ids)
    permuted = [ids[i] for i in _rng(seed, tag).permutation(len(ids))]
    return {size: sorted(permuted[:size]) for size in sizes}


def fraction_count(percent: float, num_scenes: int) -> int:
    """round(percent% of num_scenes), at least 1 and at most num_scenes (halves round up)."""
    return min(num_scenes, max(1, math.floor(percent / 100.0 * num_scenes + 0.5)))


def check_subset_sizes(percents: Sequence[float] = (), points: Sequence[int] = (), shots: Sequence[int] = ()) -> None:
    """Every requested size is valid: percents in (0, 100], points and shots >= 1. `write_subsets` calls it
    before it reads or writes anything, so a bad `--points` never leaves half the files written."""
    for percent in percents:
        if not 0 < percent <= 100:
            raise DatasetError(f"scene fraction {percent}% is outside (0, 100]")
    for n in points:
        if n < 1:
            raise DatasetError(f"limited annotations need n >= 1 points per scene, not {n}")
    for k in shots:
        if k < 1:
            raise DatasetError(f"k-shot needs k >= 1, not {k}")


def scene_fractions(scan_ids: Sequence[str], percents: Sequence[float], seed: int) -> dict[float, list[str]]:
    """{percent: sorted scan ids}, nested: a smaller percent's scenes are among every larger one's."""
    check_subset_sizes(percents=percents)
    if not scan_ids:
        raise DatasetError("no scenes to draw fractions from")
    counts = {percent: fraction_count(percent, len(scan_ids)) for percent in percents}
    chosen = _nested_prefixes(scan_ids, sorted(set(counts.values())), seed, _FRACTIONS)
    return {percent: chosen[count] for percent, count in counts.items()}


def k_shot(scan_ids: Sequence[str], shots: Sequence[int], seed: int) -> dict[int, list[str]]:
    """{k: sorted scan ids of k scenes (all when fewer)}, nested across k."""
    check_subset_sizes(shots=shots)
    chosen = _nested_prefixes(scan_ids, sorted({min(k, len(scan_ids)) for k in shots}), seed, _SHOTS)
    return {k: chosen[min(k, len(scan_ids))] for k in shots}


def scene_permutation(scan_id: str, segment: np.ndarray, seed: int, ignore_index: int = -1) -> np.ndarray:
    """The scene's labelled point indices in the seeded order that limited annotations take prefixes of."""
    labelled = np.flatnonzero(np.asarray(segment) != ignore_index)
    return labelled[_rng(seed, _POINTS, zlib.crc32(scan_id.encode())).permutation(len(labelled))]


def limited_annotations(segments: Mapping[str, np.ndarray], points: Sequence[int], seed: int,
                        ignore_index: int = -1) -> dict[int, dict[str, np.ndarray]]:
    """{n: {scan id: sorted int64 indices of n labelled points (all when fewer)}}, nested across n."""
    check_subset_sizes(points=points)
    tables: dict[int, dict[str, np.ndarray]] = {n: {} for n in points}
    for scan_id, segment in segments.items():
        order = scene_permutation(scan_id, segment, seed, ignore_index)
        for n in points:
            tables[n][scan_id] = np.sort(order[:n]).astype(np.int64)
    return tables


# -- files ----------------------------------------------------------------------------------------------------------
def write_scene_list(path: str | os.PathLike, scan_ids: Sequence[str]) -> None:
    from dos.utils.io import write_text

    write_text(path, "".join(f"{scan_id}\n" for scan_id in scan_ids))


def read_scene_list(path: str | os.PathLike) -> list[str]:
    """Scan ids of a scene list file: one per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    ids = [line.strip() for line in read_text(path, "scene list").splitlines()]
    ids = [scan_id for scan_id in ids if scan_id and not scan_id.startswith("#")]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: scene list repeats scan ids")
    return ids


def write_annotations(path: str | os.PathLike, table: Mapping[str, np.ndarray]) -> None:
    """An `.npz` (keys: scan ids, values: int64 indices) with fixed zip timestamps, so equal tables give
    byte-identical files (np.savez stamps the current time)."""
    from dos.utils.io import atomic_path

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for scan_id in sorted(table):
            info = zipfile.ZipInfo(f"{scan_id}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.asarray(table[scan_id], dtype=np.int64), allow_pickle=False)


def read_annotations(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{scan id: int64 point indices} of a limited-annotation file."""
    path = Path(path)
    with open_file(path, "annotation file") as handle:
        try:
            with np.load(handle, allow_pickle=False) as archive:
                table = {key: archive[key] for key in archive.files}
        except (ValueError, EOFError, TypeError, zipfile.BadZipFile) as error:
            raise DatasetError(f"{path}: not a readable .npz annotation file ({error})") from error
    for scan_id, indices in table.items():
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise DatasetError(f"{path}: entry {scan_id!r} is not a 1-D array of point indices")
    return {scan_id: indices.astype(np.int64, copy=False) for scan_id, indices in table.items()}


def fingerprint(format_name: str, options: Mapping, split: str, num_points: Mapping[str, int]) -> str:
    """sha256 of the format, reader options, split and every scene's id and point count."""
    text = json.dumps({"format": format_name, "options": dict(options), "split": split,
                       "scenes": sorted(num_points.items())}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_subsets(reader: Reader, split: str, out: str | os.PathLike, *, seed: int = 0,
                  percents: Sequence[float] = FRACTION_PRESETS["outdoor"], points: Sequence[int] = DEFAULT_POINTS,
                  shots: Sequence[int] = DEFAULT_SHOTS, format_name: str = "", options: Mapping | None = None,
                  log=print) -> dict:
    """Write every subset of `split` under `out` and the manifest; return the manifest. Every argument and
    every scene is checked before the first file is written."""
    from dos.data.readers import check_split
    from dos.utils.io import write_json

    check_subset_sizes(percents, points, shots)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: the output is a file, not a folder")
    check_split(reader, split)
    scan_ids = reader.scan_ids(split)
    if not scan_ids:
        raise DatasetError(f"{reader.root}: split {split!r} has no scans")
    segments: dict[str, np.ndarray] = {}
    num_points: dict[str, int] = {}
    for scan_id in scan_ids:  # every scene is read: the fingerprint counts points, annotations need labels
        scan = reader.load(split, scan_id)
        num_points[scan_id] = scan.num_points
        if points:
            if scan.segment is None:
                raise DatasetError(f"{reader.root}: split {split!r} is unlabelled (scan {scan_id}): "
                                   "limited annotations need labels")
            segments[scan_id] = scan.segment

    manifest: dict = {
        "version": FORMAT_VERSION, "seed": int(seed), "format": format_name, "root": str(Path(reader.root).resolve()),
        "reader_options": dict(options or {}), "split": split, "scenes": len(scan_ids),
        "points": int(sum(num_points.values())),
        "fingerprint": fingerprint(format_name, options or {}, split, num_points),
        "fractions": [], "annotations": [], "shots": [],
    }
    for percent, ids in scene_fractions(scan_ids, percents, seed).items():
        write_scene_list(out / fraction_file(percent), ids)
        manifest["fractions"].append({"percent": percent, "scenes": len(ids), "file": fraction_file(percent)})
        log(f"{fraction_file(percent)}: {len(ids)} of {len(scan_ids)} scenes")
    for n, table in limited_annotations(segments, points, seed, reader.label_spec.ignore_index).items():
        write_annotations(out / points_file(n), table)
        labelled = int(sum(len(v) for v in table.values()))
        manifest["annotations"].append({"points_per_scene": n, "scenes": len(table), "labelled_points": labelled,
                                        "file": points_file(n)})
        log(f"{points_file(n)}: {labelled} labelled points in {len(table)} scenes")
    for k, ids in k_shot(scan_ids, shots, seed).items():
        write_scene_list(out / shots_file(k), ids)
        manifest["shots"].append({"k": k, "scenes": len(ids), "file": shots_file(k)})
        log(f"{shots_file(k)}: {len(ids)} scenes")
    write_json(out / MANIFEST, manifest)
    return manifest


# -- command line ---------------------------------------------------------------------------------------------------
def parse_fractions(tokens: Sequence[str]) -> list[float]:
    """Percentages, or preset names (outdoor, scannet) standing for theirs; duplicates dropped, order kept."""
    percents: list[float] = []
    for token in tokens:
        if token in FRACTION_PRESETS:
            values = FRACTION_PRESETS[token]
        else:
            try:
                values = (float(token.rstrip("%")),)
            except ValueError:
                raise DatasetError(f"--fractions {token!r}: expected a percentage or one of "
                                   f"{', '.join(FRACTION_PRESETS)}") from None
        percents += [value for value in values if value not in percents]
    return percents


def configure(parser: argparse.ArgumentParser) -> None:
    from dos.data.readers import READERS

    parser.add_argument("root", help="the dataset's root folder")
    parser.add_argument("--format", required=True, choices=sorted(READERS), help="the dataset's on-disk format")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a reader option, e.g. classes=200")
    parser.add_argument("--split", default="train", help="the split to draw from (default: train)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the subset files and subsets.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", nargs="*", default=["outdoor"], metavar="PERCENT",
                        help="scene fractions in percent, or a preset: outdoor (0.1 1 10 50 100, the default) "
                             "or scannet (1 5 10 20); none to skip")
    parser.add_argument("--points", nargs="*", type=int, default=list(DEFAULT_POINTS), metavar="N",
                        help="labelled points per scene for limited annotations (default 20 50 100 200); "
                             "none to skip")
    parser.add_argument("--shots", nargs="*", type=int, default=list(DEFAULT_SHOTS), metavar="K",
                        help="scenes per k-shot list (default 5); none to skip")


def run(args: argparse.Namespace) -> int:
    from dos.data.readers import open_reader
    from dos.data.summary import parse_options

    options = parse_options(args.option)
    reader = open_reader(args.format, args.root, **options)
    write_subsets(reader, args.split, args.out, seed=args.seed, percents=parse_fractions(args.fractions),
                  points=args.points, shots=args.shots, format_name=args.format, options=options)
    print(f"wrote {args.out / MANIFEST}")
    return 0
