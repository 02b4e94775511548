"""`dos evaluate RUN [--split val] [--fragments] [--tta] [--out FILE]`: re-evaluate a probe / finetune run.

Reads the run's resolved config.yaml and model.pt, predicts the split with the standard protocol (optionally
with grid fragments and test-time augmentation voting) and writes metrics JSON (default RUN/metrics_<split>.json).

`--set KEY=VALUE` overrides the run's config before evaluating, e.g. zero-shot transfer (Table 4) of a model
fine-tuned on one dataset to another with the same classes:

    dos evaluate RUN --set data.format=parisluco3d --set data.root=data/parisluco3d --out RUN/transfer.json

The other dataset must have the run's classes (same count, and the same names when the run's own dataset can
still be opened): the model's outputs are read as the run's class ids. A run trained on several datasets
(`data.sources`) is evaluated on one with `--set data.sources=[]` besides data.format / root / reader_options
(sources take precedence over them; evaluate refuses the ambiguous overrides rather than re-read the sources).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dos.engine.common import DataConfig
    from dos.engine.segmentation import SegmentationRunConfig


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a dos probe / finetune run folder")
    parser.add_argument("--split", default=None, help="split to evaluate (default: the config's val split)")
    parser.add_argument("--fragments", action="store_true", help="vote over grid fragments covering every point")
    parser.add_argument("--tta", action="store_true", help="vote over rotations x scales x flips")
    parser.add_argument("--out", default=None, help="metrics JSON path (default RUN/metrics_<split>.json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the run's config, e.g. --set data.root=... --set data.format=... to evaluate "
                             "on another dataset with the same classes (zero-shot transfer; repeatable)")


def check_run(run_dir: Path) -> None:
    """A finished probe / finetune run has its config.yaml and model.pt: else a DosError naming the missing file."""
    from dos.errors import DosError

    for name in ("config.yaml", "model.pt"):
        if not (run_dir / name).is_file():
            raise DosError(f"{run_dir / name}: missing; is {run_dir} a finished dos probe / finetune run?")


SINGLE_DATASET_KEYS = ("data.format", "data.root", "data.reader_options")


def describe_data(data: "DataConfig") -> str:
    """The dataset(s) a DataConfig reads, for messages and records."""
    if data.sources:
        return "data.sources [" + ", ".join(f"{s.root} ({s.format})" for s in data.sources) + "]"
    return f"{data.root} ({data.format})"


def check_single_dataset_overrides(config: "SegmentationRunConfig", overrides: list[str]) -> None:
    """Overrides that point at one dataset must not be shadowed by `data.sources` still set in the config."""
    from dos.errors import DosError

    keys = [item.split("=", 1)[0] for item in overrides]
    shadowed = [key for key in keys if key.startswith(SINGLE_DATASET_KEYS)]
    if config.data.sources and shadowed:
        raise DosError(f"--set {shadowed[0]}: the run trained on {describe_data(config.data)}, which take "
                       "precedence over data.format / data.root / data.reader_options; add --set data.sources=[] "
                       "to evaluate on that one dataset")


def load_trained_run(run_dir: Path, overrides: list[str] = ()):
    """(config as trained, config with `overrides`, the trained SegmentationModel in eval mode, model.pt's record)
    of a finished probe / finetune run; its model.pt is verified against the run's summary. Seeds torch as the
    run's config says."""
    from dos.config.schema import load_config
    from dos.engine.common import setup_torch
    from dos.engine.run_folder import verified_output
    from dos.engine.segmentation import SegmentationRunConfig, build_model
    from dos.utils.io import load_torch

    check_run(run_dir)
    verified_output(run_dir / "model.pt")
    trained = load_config(SegmentationRunConfig, run_dir / "config.yaml")
    config = load_config(SegmentationRunConfig, run_dir / "config.yaml", list(overrides))
    check_single_dataset_overrides(config, list(overrides))
    setup_torch(config.seed, config.train.num_threads)
    saved = load_torch(run_dir / "model.pt", "trained model")
    config = dataclasses.replace(config, head=dataclasses.replace(config.head, pretrained=None))
    model = build_model(config, saved["mode"], saved["in_channels"], saved["num_classes"])
    model.load_state_dict(saved["state_dict"])
    return trained, config, model.eval(), saved


def run(args: argparse.Namespace) -> int:
    from dos.errors import DosError
    from dos.data.errors import DatasetError
    from dos.engine.common import setup_torch
    from dos.engine.run_folder import IDENTITY_FILE, RUN_FILES
    from dos.engine.segmentation import evaluate_model, open_split
    from dos.utils.io import write_json

    run_dir = Path(args.run)
    check_run(run_dir)
    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or (out.name in RUN_FILES and (out.parent / IDENTITY_FILE).is_file())):
        raise DosError(f"--out {out}: " + ("is a folder; give a JSON file path" if out.is_dir() else
                                           "would overwrite a record of the run in that folder; give another name"))
    trained, config, model, saved = load_trained_run(run_dir, args.overrides)
    config = dataclasses.replace(config, eval=dataclasses.replace(
        config.eval, fragments=args.fragments or config.eval.fragments, tta=args.tta or config.eval.tta))
    device = setup_torch(config.seed, config.train.num_threads)
    split = args.split or config.data.val_split
    dataset = open_split(config, split, labelled_subset=False)
    if dataset.num_classes != saved["num_classes"]:
        raise DosError(f"{describe_data(config.data)} has {dataset.num_classes} classes, the model of "
                       f"{run_dir} predicts {saved['num_classes']}: evaluate on a dataset with the run's classes")
    if args.overrides:
        try:
            own = open_split(trained, trained.data.train_split, labelled_subset=False).class_names
        except DatasetError:
            own = None  # the run's own dataset is gone: the class count was checked above
        if own is not None and tuple(own) != tuple(dataset.class_names):
            raise DosError(f"{describe_data(config.data)} names its classes differently from the run's dataset "
                           f"{describe_data(trained.data)}: {list(dataset.class_names)} vs {list(own)}")
    metrics = evaluate_model(model.to(device), dataset, config, device)
    metrics.update(split=split, fragments=config.eval.fragments, tta=config.eval.tta, run=str(run_dir))
    if args.overrides:
        where = ({"data_sources": [{"format": s.format, "root": s.root} for s in config.data.sources]}
                 if config.data.sources else {"data_format": config.data.format, "data_root": str(config.data.root)})
        metrics.update(**where, overrides=args.overrides)
    out = out or run_dir / f"metrics_{split}.json"
    write_json(out, metrics)
    print(f"[evaluate] {split}: mIoU {100 * metrics['miou']:.2f}  mAcc {100 * metrics['macc']:.2f}  "
          f"allAcc {100 * metrics['allacc']:.2f} -> {out}")
    return 0
