"""Run identity and safe output folders: a run folder only ever holds the outputs of one configuration.

A training command (pretrain, probe, finetune, distill) writes `run.json` into its `--out` folder: the command,
the hash of its resolved config (without the keys that cannot change a result: worker and thread counts, log
and checkpoint intervals, the in-memory cache) and the hashes of every input it consumed (data fingerprint,
pretrained weights, scene-list and annotation files). A later invocation on the same folder:

- resumes (or, when finished, does nothing) only when the identity is the same;
- otherwise refuses, saying what differs, before anything is written; with `--restart-if-changed` (what the
  workflow passes: Snakemake re-runs a job whose params changed) it discards the old run's files and starts
  afresh, and says so. The old state is never reused.

`--out` must be absent, empty, or a run folder of the same command; a folder holding anything else (the
repository's `config/`, a run of another command, a file) is refused untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dos.errors import DosError
from dos.utils.io import write_json

IDENTITY_FILE = "run.json"
# What the training commands write into a run folder (and nothing else).
RUN_FILES = frozenset({"run.json", "config.yaml", "provenance.json", "history.csv", "tensorboard", "checkpoint.pt",
                       "encoder.pt", "model.pt", "predictions.json", "metrics.json", "summary.json"})
# Keys that cannot change what a run computes: resuming with other values is the same run.
RESULT_NEUTRAL_KEYS = ("train.num_workers", "train.num_threads", "train.log_every", "train.checkpoint_every",
                       "diagnostics.min_usage_fraction", "diagnostics.min_effective_rank",
                       "diagnostics.on_collapse",
                       "data.cache")


def _is_run_file(name: str) -> bool:
    # also: `dos evaluate`'s default outputs (metrics_<split>.json), and the temporary files of an interrupted
    # atomic write (.NAME.xxxx.tmp)
    return (name in RUN_FILES or (name.startswith("metrics_") and name.endswith(".json"))
            or (name.startswith(".") and name.endswith(".tmp")))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: data}


def identity_config(config_data: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without the result-neutral keys: what a run's identity is made of."""
    return {k: v for k, v in _flatten(config_data).items() if k not in RESULT_NEUTRAL_KEYS}


def _recorded_command(folder: Path) -> str | None:
    """The command of a run folder written before run.json existed (its provenance.json's argv), else None."""
    try:
        argv = json.loads((folder / "provenance.json").read_text()).get("argv") or []
    except (OSError, ValueError, AttributeError):
        return None
    return str(argv[1]) if len(argv) > 1 else None


class RunFolder:
    """The `--out` folder of one training command; see the module docstring for the rules."""

    def __init__(self, out: str | Path, command: str, restart_if_changed: bool = False):
        self.path = Path(out)
        self.command = command
        self.restart_if_changed = restart_if_changed
        self.check_usable()

    @property
    def identity_path(self) -> Path:
        return self.path / IDENTITY_FILE

    def check_usable(self) -> None:
        """Refuse an --out that is a file, or a folder holding something else than a run of this command."""
        out = self.path
        if out.is_symlink() and not out.exists():
            raise DosError(f"--out {out}: a dangling symbolic link")
        if out.exists() and not out.is_dir():
            raise DosError(f"--out {out}: is a file, not a folder; give a new or empty folder")
        for parent in out.resolve().parents:
            if (parent / IDENTITY_FILE).is_file():
                raise DosError(f"--out {out}: lies inside the run folder {parent}; a run folder holds only its own "
                               "run's files. Give a folder outside it")
        if not out.exists():
            return
        try:
            names = sorted(p.name for p in out.iterdir())
        except OSError as error:
            raise DosError(f"--out {out}: cannot list the folder ({error.strerror})") from None
        if not names:
            return
        foreign = [n for n in names if not _is_run_file(n)]
        recorded = self.recorded()
        command = recorded.get("command") if recorded else _recorded_command(out)
        if foreign or command is None:
            raise DosError(f"--out {out}: the folder is not empty and is not a dos {self.command} run "
                           f"(it holds {', '.join((foreign or names)[:5])}); refusing to write into it. "
                           "Give a new or empty folder")
        if command != self.command:
            raise DosError(f"--out {out}: the folder holds a dos {command} run, not a dos {self.command} run; "
                           "refusing to write into it (swapped arguments?)")

    def recorded(self) -> dict[str, Any] | None:
        if not self.identity_path.is_file():
            return None
        try:
            data = json.loads(self.identity_path.read_text())
        except (OSError, ValueError) as error:
            raise DosError(f"{self.identity_path}: unreadable run identity ({error}); "
                           "delete the run folder to start afresh") from None
        if not isinstance(data, dict):
            raise DosError(f"{self.identity_path}: not a run identity record; delete the run folder to start afresh")
        return data

    def _differences(self, recorded: dict[str, Any] | None, identity: dict[str, Any]) -> list[str]:
        if recorded is None:
            return ["the folder has no run identity (written by an older dos): its settings are unknown"]
        diffs = []
        old_config, new_config = recorded.get("config", {}), identity["config"]
        for key in sorted(set(old_config) | set(new_config)):
            if old_config.get(key, "<absent>") != new_config.get(key, "<absent>"):
                diffs.append(f"{key}: {old_config.get(key, '<absent>')!r} -> {new_config.get(key, '<absent>')!r}")
        old_inputs, new_inputs = recorded.get("inputs", {}), identity["inputs"]
        for key in sorted(set(old_inputs) | set(new_inputs)):
            if old_inputs.get(key) != new_inputs.get(key):
                diffs.append(f"input {key} changed ({str(old_inputs.get(key))[:12]} -> {str(new_inputs.get(key))[:12]})")
        return diffs

    def claim(self, config_data: dict[str, Any], inputs: dict[str, str], main: bool = True) -> bool:
        """Make the folder this configuration's run. Returns True when it continues an existing run (resume
        or finished), False when it starts afresh. Raises DosError, writing nothing, when the folder holds a
        run of other settings and `restart_if_changed` is off."""
        identity = {"command": self.command, "config": identity_config(config_data), "inputs": dict(inputs)}
        existing = self.path.is_dir() and any(self.path.iterdir())
        if not existing:
            if main:
                write_json(self.identity_path, identity)
            return False
        diffs = self._differences(self.recorded(), identity)
        if not diffs:
            return True
        shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        if not self.restart_if_changed:
            raise DosError(f"--out {self.path}: holds a dos {self.command} run of other settings ({shown}). Its "
                           "state would mix both, so it is not resumed. Give a new --out, delete the folder, or "
                           "pass --restart-if-changed to discard it and start afresh")
        if main:
            print(f"[{self.command}] {self.path}: the settings changed ({shown}); discarding the old run and "
                  "starting afresh", flush=True)
            self.discard()
            write_json(self.identity_path, identity)
        return False

    def discard(self) -> None:
        """Remove the run's own files (only those: check_usable refused folders holding anything else); run.json
        last, so that a discard interrupted half-way is still recognised as this command's run and redone."""
        entries = sorted(self.path.iterdir(), key=lambda entry: entry.name == IDENTITY_FILE)
        for entry in entries:
            if not _is_run_file(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def verified_output(path: Path) -> str:
    """The sha256 of a file another command reads (pretrained weights, a trained model), after checking it.

    When the file lies in a dos run folder, that run must be complete (its summary.json written) and the file
    must be the one the run recorded: a changed, partial or foreign file is an error naming it."""
    from dos.utils.provenance import file_hash

    if path.is_dir():
        path = path / "encoder.pt"
    if not path.is_file():
        raise DosError(f"{path}: not found")
    try:
        digest = file_hash(path)
    except OSError as error:
        raise DosError(f"{path}: cannot read ({error.strerror})") from None
    folder = path.parent
    if path.name == "checkpoint.pt" or not (folder / IDENTITY_FILE).is_file():
        # run state rather than an output (probing a half-done pretraining), or weights from elsewhere (a
        # converted checkpoint, a run of an older dos): nothing recorded to check against
        return digest
    summary_path = folder / "summary.json"
    try:
        recorded = json.loads(summary_path.read_text()).get("outputs", {}).get(path.name)
    except FileNotFoundError:
        raise DosError(f"{path}: its run {folder} is not complete (no summary.json); finish that run first") from None
    except (OSError, ValueError, AttributeError) as error:
        raise DosError(f"{summary_path}: unreadable run summary ({error})") from None
    if recorded is None:
        raise DosError(f"{path}: not an output its run {folder} recorded in summary.json")
    if recorded != digest:
        raise DosError(f"{path}: differs from the file its run recorded (sha256 {digest[:12]} vs {recorded[:12]} in "
                       f"{summary_path}): changed or incompletely copied; re-run that run")
    return digest
