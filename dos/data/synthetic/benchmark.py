"""Generate the synthetic benchmark: LiDAR datasets per sensor / city style, and furnished rooms.

Everything is deterministic from one seed. Each scene draws from its own numpy Generator, seeded by
(dataset seed, sequence or room index, ...), so a scene does not depend on which scenes were generated
before it. A dataset is built in a hidden temporary folder and renamed into place when complete; the
manifest (manifest.json) records what each dataset folder holds -- its parameters, and every file's size
and sha256 -- so a rerun skips a dataset only when its parameters match and every file is intact.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import yaml

from dos import __version__
from dos.data.boxes import DETECTION_CLASSES, Boxes
from dos.errors import DosError
from dos.utils.io import write_json

from . import furniture, rooms, street
from .integrity import damage, file_records
from .lidar import PROFILES, SensorProfile, scan
from .writers import write_kitti_boxes, write_kitti_poses, write_kitti_scan, write_scannet_scene, write_yaml

GENERATOR_VERSION = 2  # bump when generated content changes for the same parameters (2: boxes and poses)
SCALES_PATH = Path(__file__).with_name("scales.yaml")


def load_scales() -> dict[str, dict]:
    return yaml.safe_load(SCALES_PATH.read_text())


def _tag(text: str) -> int:
    return zlib.crc32(text.encode())


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def dataset_seed(seed: int, name: str) -> int:
    """The seed of one dataset of the benchmark, derived from the benchmark seed and the dataset name."""
    return int(np.random.SeedSequence([int(seed), _tag(name)]).generate_state(1)[0])


# -- LiDAR --------------------------------------------------------------------------------------------------------
def lidar_labels(profile: SensorProfile, style: street.StreetStyle, splits: dict[str, list[str]]) -> dict:
    return {
        "names": list(street.NAMES),
        "learning_map": street.learning_map(),
        "ignore_index": -1,
        "raw_names": {0: "unlabeled", 1: "outlier", street.LANE_MARKING_RAW: "lane-marking",
                      **{raw: name for name, raw, _, _ in street.CLASSES}},
        "splits": splits,
        "sensor": profile.as_dict(),
        "style": style.as_dict(),
    }


def generate_lidar(root: str | os.PathLike, profile: str | SensorProfile, style: str | street.StreetStyle,
                   num_scans: int, seed: int, *, frames_per_sequence: int = 5, val_sequences: int = 1,
                   azimuth_steps: int | None = None, step: float = 5.0) -> dict:
    """Write `num_scans` LiDAR scans in the SemanticKITTI layout under `root`, plus root/labels.yaml.

    Scans come in sequences: one street per sequence, the sensor advancing `step` metres per frame.
    The last `val_sequences` sequences form the val split. Every scan also gets its 3D boxes (boxes/, see
    `frame_boxes`) and every sequence its poses.txt and calib.txt. Returns counts for the manifest.
    """
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    style = street.STYLES[style] if isinstance(style, str) else style
    steps = azimuth_steps or profile.azimuth_steps
    n_seq = math.ceil(num_scans / frames_per_sequence)
    if not 0 <= val_sequences < n_seq:
        raise ValueError(f"{n_seq} sequences cannot leave {val_sequences} for val and some for train")
    key = (_tag(profile.name), _tag(style.name))
    lmap = street.learning_map()
    lut = np.full(max(lmap) + 1, -1, dtype=np.int64)
    lut[list(lmap)] = list(lmap.values())
    class_points = np.zeros(len(street.NAMES), dtype=np.int64)
    box_counts = np.zeros(len(DETECTION_CLASSES), dtype=np.int64)
    seq_ids = [f"{i:02d}" for i in range(n_seq)]
    points_total = 0
    for s, seq in enumerate(seq_ids):
        frames = min(frames_per_sequence, num_scans - s * frames_per_sequence)
        xs = (np.arange(frames) - 0.5 * (frames - 1)) * step
        half_length = profile.max_range + 0.5 * (frames - 1) * step + 15.0
        layout_rng = _rng(seed, *key, s)
        prims, ego_y, objects = street.build_street_objects(style, layout_rng, half_length,
                                                            (float(xs[0]), float(xs[-1])))
        origins = np.stack([xs, np.full(frames, ego_y), np.full(frames, profile.height)], axis=1)
        for f, x in enumerate(xs):
            out = scan(prims, profile, _rng(seed, *key, s, f, 1), steps, (float(x), ego_y))
            write_kitti_scan(root, seq, f, out["points"], out["label"], out["instance"])
            boxes, instance = frame_boxes(objects, len(prims), out["primitive"], origins[f], profile.max_range)
            write_kitti_boxes(root, seq, f, boxes, instance)
            box_counts += np.bincount(boxes.label, minlength=len(box_counts))
            train_ids = lut[out["label"]]
            class_points += np.bincount(train_ids[train_ids >= 0], minlength=len(street.NAMES))
            points_total += len(out["points"])
        write_kitti_poses(root, seq, origins - origins[0])
    splits = {"train": seq_ids[:n_seq - val_sequences], "val": seq_ids[n_seq - val_sequences:]}
    write_yaml(Path(root) / "labels.yaml", lidar_labels(profile, style, splits))
    return {"scans": num_scans, "sequences": splits, "points": points_total,
            "class_points": dict(zip(street.NAMES, class_points.tolist())),
            "class_boxes": dict(zip(DETECTION_CLASSES, box_counts.tolist()))}


def frame_boxes(objects: street.StreetObjects, num_solids: int, primitive: np.ndarray, origin: np.ndarray,
                max_range: float) -> tuple[Boxes, np.ndarray]:
    """(boxes, instance ids) of the street's objects whose centre lies within `max_range` of the sensor (in
    the ground plane), in the frame of a scan taken from `origin` (the sensor's axes are the world's, so only
    the centre moves), with num_points = the scan's returns off each object's solids (a spurious return
    counts for no object; 0 = fully occluded). This count is what nuScenes' num_lidar_pts (the returns inside
    the box) measures, without the ground and neighbours' returns a box can also hold."""
    owner = np.full(num_solids + 1, -1, dtype=np.int64)  # solid row -> object; the last entry: no solid (-1)
    for i, (start, end) in enumerate(objects.solids):
        owner[start:end] = i
    hits = owner[primitive]
    counts = np.bincount(hits[hits >= 0], minlength=len(objects.boxes))
    b = objects.boxes
    boxes = Boxes(b.center - origin, b.size, b.yaw, b.label, b.velocity, counts, b.attribute)
    near = np.hypot(boxes.center[:, 0], boxes.center[:, 1]) <= max_range
    return boxes.select(near), objects.instance[near]


# -- rooms --------------------------------------------------------------------------------------------------------
def rooms_labels(splits: dict[str, list[str]]) -> dict:
    split200 = rooms.frequency_split()
    return {"names": list(furniture.NAMES20), "names200": list(furniture.NAMES200), "ignore_index": -1,
            "coarse_of_fine": [f.coarse for f in furniture.FINE], **split200, "splits": splits}


def generate_rooms(root: str | os.PathLike, num_rooms: int, seed: int, *, val_rooms: int = 1,
                   rays_per_view: int = 8000, views: tuple[int, int] = (2, 4)) -> dict:
    """Write `num_rooms` scanned rooms in the Pointcept ScanNet layout under `root`, plus root/labels.yaml.

    The last `val_rooms` rooms form the val split. Returns counts for the manifest.
    """
    if not 0 <= val_rooms < num_rooms:
        raise ValueError(f"{num_rooms} rooms cannot leave {val_rooms} for val and some for train")
    splits: dict[str, list[str]] = {"train": [], "val": []}
    class_points = np.zeros(len(furniture.NAMES200), dtype=np.int64)
    points_total = 0
    for i in range(num_rooms):
        rng = _rng(seed, _tag("rooms"), i)
        prims, size, _ = rooms.build_room(rng)
        cams = rooms.camera_positions(prims, size, rng, int(rng.integers(views[0], views[1] + 1)))
        out = rooms.scan_room(prims, cams, rays_per_view, rng)
        split = "train" if i < num_rooms - val_rooms else "val"
        name = f"scene{i:04d}_00"
        write_scannet_scene(root, split, name, {
            "coord": out["coord"], "color": out["color"], "normal": out["normal"],
            "segment20": rooms.coarse_labels(out["fine"]), "segment200": out["fine"], "instance": out["instance"]})
        splits[split].append(name)
        fine = out["fine"]
        class_points += np.bincount(fine[fine >= 0], minlength=len(class_points))
        points_total += len(fine)
    write_yaml(Path(root) / "labels.yaml", rooms_labels(splits))
    coarse = np.bincount(np.array([f.coarse for f in furniture.FINE]), weights=class_points,
                         minlength=len(furniture.NAMES20)).astype(np.int64)
    return {"rooms": num_rooms, "splits": {k: len(v) for k, v in splits.items()}, "points": points_total,
            "class_points": dict(zip(furniture.NAMES20, coarse.tolist())),
            "fine_classes_present": int((class_points > 0).sum())}


# -- the benchmark ------------------------------------------------------------------------------------------------
def _spec(name: str, params: dict, seed: int) -> dict:
    """Everything that determines a dataset's bytes: equal specs mean equal files."""
    return {**params, "seed": dataset_seed(seed, name), "generator": GENERATOR_VERSION, "version": __version__}


def _generate_one(root: Path, spec: dict) -> dict:
    p = {k: v for k, v in spec.items() if k not in ("kind", "seed", "generator", "version")}
    if spec["kind"] == "lidar":
        return generate_lidar(root, p["profile"], p["style"], p["scans"], spec["seed"],
                              frames_per_sequence=p["frames_per_sequence"], val_sequences=p["val_sequences"],
                              azimuth_steps=p.get("azimuth_steps"), step=p.get("step", 5.0))
    if spec["kind"] == "rooms":
        return generate_rooms(root, p["rooms"], spec["seed"], val_rooms=p["val_rooms"],
                              rays_per_view=p["rays_per_view"])
    raise ValueError(f"unknown dataset kind {spec['kind']!r}")


DENSITIES = ("scale", "paper")


def scale_datasets(scale: str, density: str = "scale") -> dict[str, dict]:
    """The datasets of `scale` (scales.yaml). density "paper": LiDAR scans at their sensor's full azimuth
    resolution (nuScenes-like: 32 beams x 1088 steps, about 30k points a scan, as real nuScenes' ~34k) instead
    of the scale's reduced `azimuth_steps`, so that timings describe real work."""
    scales = load_scales()
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r}; known: {sorted(scales)}")
    if density not in DENSITIES:
        raise ValueError(f"unknown density {density!r}; known: {DENSITIES}")
    datasets = scales[scale]
    if density == "paper":
        datasets = {name: {k: v for k, v in params.items() if not (params["kind"] == "lidar" and k == "azimuth_steps")}
                    for name, params in datasets.items()}
    return datasets


def _read_manifest(path: Path, log) -> dict:
    """The datasets of an earlier run's manifest; {} (everything is rebuilt) when it is absent or unreadable."""
    if not path.exists():
        return {}
    try:
        datasets = json.loads(path.read_text()).get("datasets", {})
    except (OSError, ValueError, AttributeError) as error:
        log(f"{path}: unreadable ({error}); regenerating every dataset")
        return {}
    return datasets if isinstance(datasets, dict) else {}


def _stale(root: Path, previous: dict | None, spec: dict) -> list[str] | None:
    """Why the dataset folder `root` must be rebuilt: None for a new dataset or new parameters, [] when it is
    up to date, else what is damaged (checked file by file against the manifest)."""
    if previous is None or previous.get("spec") != spec:
        return None
    if not isinstance(previous.get("files"), dict):
        return ["the manifest records no file sizes and hashes (written by an older version)"]
    return damage(root, previous["files"])


def generate_benchmark(out_dir: str | os.PathLike, scale: str, seed: int = 0, *, force: bool = False,
                       log=print, density: str = "scale") -> dict:
    """Write every dataset of `scale` under out_dir/<dataset name>/ and out_dir/manifest.json.

    A dataset whose manifest entry matches (same parameters, seed and generator version) and whose every
    file has the recorded size and sha256 is skipped unless `force`; any other is rebuilt in a temporary
    folder and swapped in, and what was damaged is logged.
    """
    scales = {scale: scale_datasets(scale, density)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    old = _read_manifest(manifest_path, log)
    for name in old:  # datasets of another scale that this run does not keep
        if name not in scales[scale] and (out / name).is_dir():
            shutil.rmtree(out / name)
    manifest = {"scale": scale, "density": density, "seed": int(seed), "version": __version__,
                "generator": GENERATOR_VERSION,
                "datasets": {name: old[name] for name in scales[scale] if name in old}}
    for name, params in scales[scale].items():
        spec = _spec(name, params, seed)
        root = out / name
        problems = None if force else _stale(root, manifest["datasets"].get(name), spec)
        if problems == []:
            log(f"{name}: up to date")
            continue
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            log(f"{name}: not up to date ({shown}); regenerating")
        if root.exists() and name not in old and not force:
            raise DosError(f"{root}: exists but is not a dataset recorded in {manifest_path}; refusing to replace "
                           "it (move it away, or pass --force to overwrite it)")
        # the entry says "being rebuilt" before the folder changes: an interrupted rebuild is redone next time,
        # and the folder is still known to be ours
        manifest["datasets"][name] = {"rebuilding": True}
        write_json(manifest_path, manifest)
        tmp = out / f".{name}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        counts = _generate_one(tmp, spec)
        files = file_records(tmp)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
        manifest["datasets"][name] = {"spec": spec, "counts": counts, "files": files}
        write_json(manifest_path, manifest)
        log(f"{name}: {counts.get('scans', counts.get('rooms'))} scenes, {counts['points']} points")
    manifest["datasets"] = {name: manifest["datasets"][name] for name in scales[scale]}  # the scale's order
    write_json(manifest_path, manifest)
    return manifest
