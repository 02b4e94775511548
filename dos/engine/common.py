"""Pieces every command shares: data and model config sections, seeding, devices, and the run folder records."""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic  # (explicit: setup_torch sets fill_uninitialized_memory)

from dos.config.schema import to_dict
from dos.errors import DosError
from dos.utils.io import write_json, write_text
from dos.config.ranges import check_ranges
from dos.data.mixture import FeatureMap


@dataclass(frozen=True)
class SourceConfig:
    """One dataset of a joint training set (`data.sources`): where it is, how often batches draw from it, its
    input voxel and how its features are brought onto the shared scale (dos/data/mixture.py says why)."""

    format: str                             # see `dos data summary --help` for the formats
    root: str
    reader_options: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0                     # share of every epoch's draws (normalised over the sources)
    grid_size: float | None = None          # input voxel (m) of its views; None = views.grid_size
    features: FeatureMap = field(default_factory=FeatureMap)   # clip(feat * scale + shift)
    max_scenes: int = 0                     # 0 = no cap

    def __post_init__(self) -> None:
        check_ranges(self, positive=("weight",), nonnegative=("max_scenes",))
        if self.grid_size is not None and not self.grid_size > 0:
            raise ValueError(f"grid_size must be > 0 (or null), got {self.grid_size!r}")


@dataclass(frozen=True)
class DataConfig:
    """The training / evaluation data: one dataset (format, root, reader_options, subsets), or with `sources`
    several at once (joint pretraining, multi-source fine-tuning); format, root and reader_options are then
    not read."""

    format: str = "synthetic-lidar"         # see `dos data summary --help` for the formats
    root: str = "data/mini/synthetic/synthetic-nuscenes"
    train_split: str = "train"
    val_split: str = "val"
    reader_options: dict[str, Any] = field(default_factory=dict)
    scenes: str | None = None               # scene-list file (label-efficiency subsets), None = whole split
    annotations: str | None = None          # limited-annotation file (.npz), None = every label
    max_scenes: int = 0                     # 0 = no cap
    cache: bool = True                      # keep decoded scenes in memory
    coord_in_feat: bool = True              # network input = [xyz, features] (PTv3 convention)
    sources: tuple[SourceConfig, ...] = ()  # joint training on several datasets; () = the one dataset above

    def __post_init__(self) -> None:
        check_ranges(self, nonnegative=("max_scenes",))
        if self.sources and (self.scenes or self.annotations or self.max_scenes):
            raise ValueError("scenes, annotations and max_scenes select within one dataset: with sources, cap "
                             "each source with its own max_scenes")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "ptv3"                  # ptv3 | spunet
    config: str = "paper"                   # a name in dos/models/configs or a YAML path
    overrides: dict[str, Any] = field(default_factory=dict)
    supervision_stage: int = 2              # pretraining: stage whose voxels are the supervision units

    def __post_init__(self) -> None:
        if self.backbone not in ("ptv3", "spunet"):
            raise ValueError(f"backbone must be ptv3 or spunet, got {self.backbone!r}")
        check_ranges(self, nonnegative=("supervision_stage",))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("--out", required=True,
                        help="run folder: new, empty, or a run of this command with the same settings (resumed)")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="when --out holds a run of other settings, discard it and start afresh (what the "
                             "workflow does when a job's params changed) instead of refusing")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set objective.zipf_alpha=0 (repeatable)")


def seed_from(*parts: int) -> int:
    """A 63-bit seed mixing the parts (numpy SeedSequence): sample seeds are functions of (seed, epoch, index)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def setup_torch(seed: int, num_threads: int) -> torch.device:
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    if not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also fills every new tensor (NaN, or the largest integer) to expose reads of
        # uninitialised memory: a debugging aid, not part of determinism, that costs one fill_ per allocation
        # (2,400 operators and ~14 % of a mini pretraining step). The bit-identical-run tests guard those reads.
        torch.utils.deterministic.fill_uninitialized_memory = False
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) dataclass / dict / list to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def write_run_records(out_dir: Path, config: Any, command: str, extra: dict[str, Any] | None = None,
                      resumed: bool = False) -> None:
    """The resolved config (YAML) and the provenance (commit, versions, config hash, seed, device) of a run.

    A resumed run keeps the records of its first invocation (its identity is the same, see run_folder.py);
    `RunStart.write_summary` adds the commit and command line of the invocations that finished it."""
    import yaml

    from dos.utils.provenance import config_hash, environment

    data = to_dict(config)
    provenance_path = out_dir / "provenance.json"
    if resumed and provenance_path.is_file() and (out_dir / "config.yaml").is_file():
        return
    write_text(out_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))
    write_json(provenance_path, {"command": command, "config_hash": config_hash(data),
                                 "seed": data.get("seed"), **environment(), **(extra or {})})


def data_fingerprint(dataset: Any) -> str:
    """sha256 over the dataset's format, split, root and scene ids (cheap; identifies what was trained on); of a
    mixture, over each source's fingerprint with its weight, grid size and feature map."""
    from dos.data.mixture import SourceMixture
    from dos.utils.provenance import config_hash

    if isinstance(dataset, SourceMixture):
        return config_hash({"sources": [
            {"data": data_fingerprint(part), "weight": weight, "grid_size": grid, "features": to_dict(features)}
            for part, weight, grid, features in zip(dataset.parts, dataset.weights, dataset.grid_sizes,
                                                    dataset.feature_maps)]})
    return config_hash({"format": dataset.format, "split": dataset.split, "root": str(dataset.reader.root),
                        "scenes": list(dataset.scan_ids)})


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated())
    from dos.bench.memory import _status_kib

    return _status_kib("VmHWM") * 1024


def open_dataset(data: DataConfig, split: str, labelled_subset: bool = True):
    """The SceneDataset of a split, or with `data.sources` the SourceMixture of theirs; `labelled_subset` applies
    the config's scene / annotation subsets (training)."""
    from dos.data.dataset import SceneDataset
    from dos.data.mixture import SourceMixture

    if data.sources:
        parts = [SceneDataset(source.format, source.root, split, reader_options=source.reader_options,
                              max_scenes=source.max_scenes or None, cache=data.cache) for source in data.sources]
        return SourceMixture(parts, [s.weight for s in data.sources], [s.grid_size for s in data.sources],
                             [s.features for s in data.sources])
    return SceneDataset(data.format, data.root, split, reader_options=data.reader_options,
                        scenes=data.scenes if labelled_subset else None,
                        annotations=data.annotations if labelled_subset else None,
                        max_scenes=data.max_scenes or None, cache=data.cache)


def input_channels(dataset: Any, data: DataConfig) -> int:
    """Network input width: the dataset's features, plus xyz when the coordinates are input channels."""
    return dataset.feat_channels + (3 if data.coord_in_feat else 0)


@dataclass
class RunStart:
    config: Any
    out: Path
    rank: int
    world: int
    device: torch.device
    timer: Timer
    folder: Any = None              # dos.engine.run_folder.RunFolder
    resumed: bool = False           # set by `record`: the folder continues a run of the same identity

    def record(self, inputs: dict[str, str], extra: dict[str, Any] | None = None) -> None:
        """After every check has passed: claim the run folder for this identity (config + input hashes;
        refusing, or discarding with --restart-if-changed, a run of other settings), then write the records."""
        from dos.engine import distributed

        main = distributed.is_main()
        self.resumed = self.folder.claim(to_dict(self.config), inputs, main=main)
        if main:
            import sys

            write_run_records(self.out, self.config, " ".join(sys.argv), {**(extra or {}), "inputs": inputs},
                              resumed=self.resumed)
        distributed.barrier()

    def finished(self, result: Any, outputs: list[str]) -> bool:
        """True when this invocation found the run complete with all its outputs: nothing is rewritten."""
        done = result.steps_done == 0 and all((self.out / name).is_file() for name in [*outputs, "summary.json"])
        if done:
            print(f"[{self.folder.command}] {self.out} is complete; nothing rewritten", flush=True)
        return done

    def write_summary(self, result: Any, outputs: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """summary.json: wall time and peak memory accumulated over every invocation of the run (up to the last
        checkpoint of interrupted ones), and the sha256 of each output, which downstream commands verify."""
        from dos.utils.provenance import file_hash

        seconds = self.timer.seconds()
        summary = {"total_steps": result.start_step + result.steps_done,
                   "wall_seconds": result.wall_seconds(seconds),
                   "peak_memory_bytes": result.peak_memory(peak_memory_bytes(self.device)),
                   "invocation_wall_seconds": seconds, "resumed_at_step": result.start_step,
                   "device": str(self.device), "outputs": {name: file_hash(self.out / name) for name in outputs},
                   **(extra or {})}
        if result.start_step > 0:
            import json

            from dos.utils.provenance import environment

            path = self.out / "provenance.json"
            try:
                provenance = json.loads(path.read_text())
            except (OSError, ValueError):
                provenance = None
            if isinstance(provenance, dict):
                env = environment()
                provenance.setdefault("resumed_by", []).append({"at_step": result.start_step,
                                                                "git_commit": env["git_commit"], "argv": env["argv"]})
                write_json(path, provenance)
        write_json(self.out / "summary.json", summary)
        return summary


def start_run(schema: type, args: argparse.Namespace, command: str) -> RunStart:
    """Validate the config and the --out folder (before any work or write), join the process group, seed,
    pick the device, start the clock."""
    from dos.config.schema import load_config
    from dos.engine import distributed
    from dos.engine.run_folder import RunFolder

    timer = Timer()
    config = load_config(schema, args.config, args.overrides)
    folder = RunFolder(args.out, command, restart_if_changed=getattr(args, "restart_if_changed", False))
    rank, world = distributed.init_from_env()
    if config.train.batch_size % world:
        raise DosError(f"train.batch_size {config.train.batch_size} must be divisible by the {world} ranks")
    device = setup_torch(config.seed, config.train.num_threads)
    return RunStart(config=config, out=Path(args.out), rank=rank, world=world, device=device, timer=timer,
                    folder=folder)


def budget_record(total_steps: int, steps_per_epoch: int, batch_size: int, scenes: int) -> dict[str, Any]:
    """What a run's training budget was, for its provenance (the tables' budget notes read it back)."""
    return {"batch_size": batch_size, "train_scenes": scenes, "steps_per_epoch": steps_per_epoch,
            "epochs": round(total_steps / steps_per_epoch, 2)}


def input_hashes(data: "DataConfig", dataset: Any, **weights: str | Path | None) -> dict[str, str]:
    """The hashes of what a run consumes: the data fingerprint, the scene-list / annotation files, and the
    given weight files (each verified against the summary of the run that wrote it, when there is one)."""
    from dos.engine.run_folder import verified_output
    from dos.utils.provenance import file_hash

    inputs = {"data": data_fingerprint(dataset)}
    for name in ("scenes", "annotations"):
        path = getattr(data, name)
        if path:
            try:
                inputs[name] = file_hash(path)
            except OSError as error:
                raise DosError(f"data.{name} {path}: cannot read ({error.strerror})") from None
    for name, path in weights.items():
        if path:
            inputs[name] = verified_output(Path(path))
    return inputs
