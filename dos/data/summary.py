"""`dos data summary`: read every scan of a dataset and report, per split, the number of scans and
points and the per-class point counts under the training label map; for a dataset with 3D boxes
(`Scan.extra["boxes"]`), the number of boxes per detection class and how many of them hold no LiDAR point
(num_points 0: fully occluded, dropped by nuScenes' evaluation).

Reading every file is the point: it is the check that a dataset on disk is complete and well formed
before a long job starts. Any bad file stops the command with the reader's message (exit status 2).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import numpy as np

from dos.data.boxes import DETECTION_CLASSES
from dos.data.errors import DatasetError

if TYPE_CHECKING:
    from dos.data.readers import Reader


def configure(parser: argparse.ArgumentParser) -> None:
    from dos.data.readers import READERS

    parser.add_argument("root", help="the dataset's root folder")
    parser.add_argument("--format", required=True, choices=sorted(READERS), help="the dataset's on-disk format")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a reader option, e.g. classes=200, info=nus_info.pkl, split_file=splits.yaml, "
                             "labels=cola (count the coarse COLA classes)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> reader options; values that read as integers become integers."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DatasetError(f"--option {pair!r}: expected KEY=VALUE")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    return options


def summarize(reader: Reader) -> dict:
    """{label_spec, num_classes, splits: {split: {scans, points, labelled[, ignored, classes: {name: count}]
    [, boxes: {detection class: count}, empty_boxes: count]}}}; boxes only when some scan of the split has them."""
    spec = reader.label_spec
    splits = {}
    for split in reader.splits():
        counts = np.zeros(spec.num_classes, dtype=np.int64)
        box_counts = np.zeros(len(DETECTION_CLASSES), dtype=np.int64)
        scans = points = ignored = empty_boxes = 0
        has_boxes = False
        labelled = None
        for scan_id in reader.scan_ids(split):
            scan = reader.load(split, scan_id)
            scans += 1
            points += scan.num_points
            has_labels = scan.segment is not None
            if labelled is not None and has_labels != labelled:
                raise DatasetError(f"{reader.root}: split {split!r} mixes labelled and unlabelled scans "
                                   f"(scan {scan_id})")
            labelled = has_labels
            if "boxes" in scan.extra:
                boxes = scan.extra["boxes"]
                has_boxes = True
                box_counts += np.bincount(boxes.label, minlength=len(DETECTION_CLASSES))
                empty_boxes += int((boxes.num_points == 0).sum())
            if has_labels:
                valid = scan.segment[scan.segment != spec.ignore_index]
                counts += np.bincount(valid, minlength=spec.num_classes)
                ignored += int(scan.segment.size - valid.size)
        if scans == 0:
            raise DatasetError(f"{reader.root}: split {split!r} has no scans")
        entry = {"scans": scans, "points": points, "labelled": bool(labelled)}
        if labelled:
            entry["ignored"] = ignored
            entry["classes"] = {name: int(n) for name, n in zip(spec.names, counts)}
        if has_boxes:
            entry["boxes"] = {name: int(n) for name, n in zip(DETECTION_CLASSES, box_counts)}
            entry["empty_boxes"] = empty_boxes
        splits[split] = entry
    return {"label_spec": spec.name, "num_classes": spec.num_classes, "splits": splits}


def format_text(summary: dict) -> str:
    lines = [f"label spec: {summary['label_spec']} ({summary['num_classes']} classes)"]
    for split, entry in summary["splits"].items():
        lines.append(f"\n[{split}] scans: {entry['scans']}  points: {entry['points']}"
                     + ("" if entry["labelled"] else "  (unlabelled)"))
        if entry["labelled"]:
            width = max(len(name) for name in entry["classes"])
            for name, count in entry["classes"].items():
                lines.append(f"  {name:<{width}}  {count:>12}")
            lines.append(f"  {'(ignored)':<{width}}  {entry['ignored']:>12}")
        if "boxes" in entry:
            lines.append(f"[{split}] 3D boxes: {sum(entry['boxes'].values())}  ({entry['empty_boxes']} hold no LiDAR "
                         f"point)")
            width = max(len(name) for name in entry["boxes"])
            for name, count in entry["boxes"].items():
                lines.append(f"  box {name:<{width}}  {count:>12}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from dos.data.readers import open_reader

    reader = open_reader(args.format, args.root, **parse_options(args.option))
    summary = {"format": args.format, "root": str(reader.root), **summarize(reader)}
    print(json.dumps(summary, indent=2) if args.json else format_text(summary))
    return 0
