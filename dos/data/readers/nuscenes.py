"""nuScenes-lidarseg: key-frame LIDAR_TOP sweeps with per-point labels.

Points: samples/LIDAR_TOP/*.pcd.bin, float32 [N, 5] x, y, z, intensity (0..255), ring index.
Labels: lidarseg/<version>/<lidar sample_data token>_lidarseg.bin, uint8 [N], raw class 0..31.
feat = [intensity / 255] (C = 1); the ring index goes to extra["ring"]. Scan ids are sample tokens.

The list of scans comes from one of two sources:

* mmdet3d info pickles (`info=` a path or list of paths relative to the root, or every *info*.pkl at
  the root). Each file is one split, named from its file name (nuscenes_infos_train.pkl -> train,
  nus_info.pkl -> all). A split is labelled when its entries carry `pts_semantic_mask_path`.
* the official tables, <root>/<version>/{sample_data,sample,scene,lidarseg}.json (used when there is
  no info pickle), e.g. the raw v1.0-trainval download with nuScenes-lidarseg unpacked over it. Scenes go
  to splits by the official lists (dos/data/splits/nuscenes.yaml, from the devkit): v1.0-trainval ->
  train (700 scenes) / val (150), v1.0-mini -> train / val (the devkit's mini_train / mini_val), v1.0-test
  -> test. A scene of those versions that the lists do not name is an error (tables from elsewhere need
  their own lists). `split_file=` a YAML {split: [scene names]} relative to the root replaces the lists;
  a version without official lists and no split file gives one split, "all". The tables are labelled
  when lidarseg.json exists; a lidarseg category.json, when present, must number its classes as the
  label spec does (the .bin files store that `index`).

3D boxes (`Scan.extra["boxes"]`, a dos.data.boxes.Boxes in the LIDAR_TOP frame, detection classes only) come
from the info entries' `instances` (readers/mmdet3d.py; their convention is the `box_convention` option) or
from sample_annotation.json and the tables it refers to (readers/nuscenes_tables.py). `extra["ego_pose"]` is
the 4x4 transform from the LIDAR_TOP frame to the global frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dos.data.errors import DatasetError
from dos.data.labels import load_label_spec
from dos.data.readers import check_split
from dos.data.readers.files import (check_coord, check_count, has_file, read_records, read_text, require_dir,
                                    sorted_names)
from dos.data.readers.mmdet3d import (entry_text, find_info_files, info_boxes, info_classes, info_pose,
                                     info_split_name, read_info)
from dos.data.readers.nuscenes_tables import TableBoxes, read_table
from dos.data.scan import Scan
from dos.data.splits import load_split_lists, split_of

LIDAR_DIR = "samples/LIDAR_TOP"
DEFAULT_VERSION = "v1.0-trainval"
INTENSITY_SCALE = 255.0


class NuScenesReader:
    def __init__(self, root: str | Path, info: str | Path | list | None = None, version: str | None = None,
                 split_file: str | Path | None = None, box_convention: str = "mmdet3d"):
        self.root = require_dir(Path(root), "dataset root")
        self.label_spec = load_label_spec("nuscenes")
        self.box_convention = box_convention
        # split -> scan id -> (points path, label path or None)
        self._scans: dict[str, dict[str, tuple[Path, Path | None]]] = {}
        # where a scan's boxes and pose come from: (split, scan id) -> (info path, position, entry, classes)
        # for info pickles; sample token -> its LIDAR_TOP key frame's sample_data record for the tables
        self._entries: dict[tuple[str, str], tuple[Path, int, dict, tuple[str, ...]]] = {}
        self._key_frames: dict[str, dict] = {}
        self._table_boxes: TableBoxes | None = None
        if isinstance(info, (str, Path)):
            info = [info]
        info_files = {info_split_name(Path(p)): self.root / p for p in info} if info else find_info_files(self.root)
        if info_files:
            for split, path in info_files.items():
                self._scans[split] = self._index_info(path, version, split)
        else:
            self._index_tables(version, split_file)

    # -- indexing ---------------------------------------------------------------------------------------

    def _resolve(self, name: str, default_dir: str) -> Path:
        """An info file's path: a bare file name lives in `default_dir`; a longer path is taken from its
        samples/, sweeps/ or lidarseg/ part on (infos written on another machine carry its prefix)."""
        path = Path(name)
        if path.is_absolute():
            return path
        if len(path.parts) == 1:
            return self.root / default_dir / path
        for anchor in ("samples", "sweeps", "lidarseg"):
            if anchor in path.parts:
                return self.root.joinpath(*path.parts[path.parts.index(anchor):])
        return self.root / path

    def _index_info(self, path: Path, version: str | None, split: str) -> dict[str, tuple[Path, Path | None]]:
        metainfo, entries = read_info(path)
        classes = info_classes(metainfo, path)
        version = version or metainfo.get("version", DEFAULT_VERSION)
        if not isinstance(version, str):
            raise DatasetError(f"{path}: metainfo version is a {type(version).__name__}, not a string")
        masks = [entry_text(entry, ("pts_semantic_mask_path",), path, position)
                 for position, entry in enumerate(entries)]
        labelled = any(masks)
        scans = {}
        for position, (entry, mask) in enumerate(zip(entries, masks)):
            scan_id = str(entry.get("token", entry.get("sample_idx", position)))
            if scan_id in scans:
                raise DatasetError(f"{path}: entry {position} repeats token {scan_id!r}: two scans would be one")
            lidar = entry_text(entry, ("lidar_points.lidar_path", "lidar_path"), path, position)
            if not lidar:
                raise DatasetError(f"{path}: entry {position} ({scan_id}) has no lidar path")
            if labelled and not mask:
                raise DatasetError(f"{path}: entry {position} ({scan_id}) has no pts_semantic_mask_path "
                                   f"in a labelled split")
            label = self._resolve(mask, f"lidarseg/{version}") if mask else None
            scans[scan_id] = (self._resolve(lidar, LIDAR_DIR), label)
            self._entries[split, scan_id] = (path, position, entry, classes)
        if not scans:
            raise DatasetError(f"{path}: info pickle lists no scans")
        return scans

    def _table(self, folder: Path, name: str, key: str, fields: tuple[str, ...]) -> dict[str, dict]:
        return read_table(folder, name, key, dict.fromkeys(fields, "text"))

    def _index_tables(self, version: str | None, split_file: str | Path | None) -> None:
        if version is None:
            candidates = sorted_names(self.root, dirs=True, prefix="v1.0-")
            if len(candidates) != 1:
                raise DatasetError(f"{self.root}: no info pickle, and {len(candidates)} v1.0-* table folders "
                                   f"({', '.join(candidates) or 'none'}); pass version= or info=")
            version = candidates[0]
        tables = require_dir(self.root / version, "nuScenes tables")
        scene_name = {token: row["name"] for token, row in self._table(tables, "scene", "token", ("name",)).items()}
        sample_scene = {token: scene_name.get(row["scene_token"])
                        for token, row in self._table(tables, "sample", "token", ("scene_token",)).items()}
        labelled = has_file(tables / "lidarseg.json", "nuScenes table lidarseg.json")
        label_of = {token: row["filename"] for token, row in
                    self._table(tables, "lidarseg", "sample_data_token", ("filename",)).items()} if labelled else {}
        by_scene: dict[str, dict[str, tuple[Path, Path | None]]] = {}
        key_frame_of: dict[str, str] = {}  # sample token -> its LIDAR_TOP key frame's token
        sample_data = self._table(tables, "sample_data", "token", ("sample_token", "filename"))
        for row in sample_data.values():
            if not (row.get("is_key_frame") and row["filename"].startswith(LIDAR_DIR + "/")):
                continue
            if row["sample_token"] in key_frame_of:
                raise DatasetError(f"{tables / 'sample_data.json'}: sample {row['sample_token']} has two LIDAR_TOP "
                                   f"key frames ({key_frame_of[row['sample_token']]} and {row['token']})")
            key_frame_of[row["sample_token"]] = row["token"]
            self._key_frames[row["sample_token"]] = row
            if labelled and row["token"] not in label_of:
                raise DatasetError(f"{tables / 'lidarseg.json'}: no label for LIDAR_TOP key frame {row['token']}")
            label = self.root / label_of[row["token"]] if labelled else None
            scene = sample_scene.get(row["sample_token"])
            if scene is None:
                raise DatasetError(f"{tables / 'sample_data.json'}: sample {row['sample_token']} of "
                                   f"{row['token']} has no scene in sample.json/scene.json")
            by_scene.setdefault(scene, {})[row["sample_token"]] = (self.root / row["filename"], label)
        if not by_scene:
            raise DatasetError(f"{tables / 'sample_data.json'}: no LIDAR_TOP key frames")
        if labelled:
            self._check_categories(tables)
        if TableBoxes.present(tables):
            self._table_boxes = TableBoxes(tables)
        if split_file is not None:
            splits = self._read_split_file(self.root / split_file)
        else:
            splits = load_split_lists("nuscenes").get(version)
            if splits is None:
                self._scans["all"] = {k: v for scene in sorted(by_scene) for k, v in by_scene[scene].items()}
                return
            listed = split_of(splits)
            unlisted = sorted(scene for scene in by_scene if scene not in listed)
            if unlisted:
                raise DatasetError(f"{tables / 'scene.json'}: scenes {', '.join(unlisted[:5])} are in none of the "
                                   f"official {version} splits ({', '.join(splits)}); pass split_file= a YAML "
                                   f"{{split: [scene names]}} for tables that are not the official release")
        for split, scenes in splits.items():
            scans = {k: v for scene in scenes for k, v in by_scene.get(scene, {}).items()}
            if scans or split_file is not None:
                self._scans[str(split)] = scans

    def _read_split_file(self, path: Path) -> dict[str, list[str]]:
        try:
            splits = yaml.safe_load(read_text(path, "split file"))
        except yaml.YAMLError as error:
            raise DatasetError(f"{path}: not valid YAML ({error})") from error
        if not isinstance(splits, dict) or not all(isinstance(scenes, list) for scenes in splits.values()):
            raise DatasetError(f"{path}: a split file is a YAML mapping {{split: [scene names]}}")
        return splits

    def _check_categories(self, tables: Path) -> None:
        """The lidarseg .bin files store category.json's `index`: refuse a numbering other than the label spec's,
        which would turn every class into another without a word. A category.json without indices (the
        detection-only release) says nothing about it and is skipped."""
        if not has_file(tables / "category.json", "nuScenes table category.json"):
            return
        expected = self.label_spec.raw_names
        for row in self._table(tables, "category", "token", ("name",)).values():
            index = row.get("index")
            if index is not None and expected.get(index) != row["name"]:
                raise DatasetError(f"{tables / 'category.json'}: category {row['name']!r} has index {index}, but "
                                   f"raw id {index} is {expected.get(index)!r} in the nuscenes label spec")

    # -- the reader interface ---------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(self._scans)

    def scan_ids(self, split: str) -> list[str]:
        check_split(self, split)
        return list(self._scans[split])

    def load(self, split: str, scan_id: str) -> Scan:
        check_split(self, split)
        if scan_id not in self._scans[split]:
            raise DatasetError(f"{self.root}: no scan {scan_id!r} in split {split!r}")
        points_path, label_path = self._scans[split][scan_id]
        points = read_records(points_path, np.float32, 5, "LIDAR_TOP sweep")
        coord = check_coord(points[:, :3], points_path)
        scan = Scan(name=scan_id, coord=coord, feat=points[:, 3:4] / np.float32(INTENSITY_SCALE),
                    extra={"ring": points[:, 4].astype(np.int64), "feat_names": ["intensity/255"]})
        if label_path is not None:
            if not has_file(label_path, "lidarseg label file"):
                raise DatasetError(f"{label_path}: lidarseg label file missing for scan {scan_id} of "
                                   f"labelled split {split!r}")
            raw = check_count(read_records(label_path, np.uint8, 1, "lidarseg label file"), len(coord),
                              label_path, "labels")
            scan.segment = self.label_spec.map_raw(raw, label_path)
            scan.extra["raw_segment"] = raw.astype(np.int64)
        self._add_boxes(split, scan)
        return scan

    def _add_boxes(self, split: str, scan: Scan) -> None:
        """extra["boxes"] and extra["ego_pose"] where the info entry or the tables have them."""
        if (split, scan.name) in self._entries:
            path, position, entry, classes = self._entries[split, scan.name]
            boxes = info_boxes(entry, classes, self.box_convention, path, position)
            pose = info_pose(entry, path, position)
        elif self._table_boxes is not None:
            boxes, pose = self._table_boxes.boxes(scan.name, self._key_frames[scan.name])
        else:
            return
        if boxes is not None:
            scan.extra["boxes"] = boxes
        if pose is not None:
            scan.extra["ego_pose"] = pose
