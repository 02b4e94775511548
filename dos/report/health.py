"""Whether the encoders behind a table cell collapsed, read from their pretraining records.

Every pretraining writes its collapse statistics to `history.csv` (dos/pretrain/diagnostics.py) and its
thresholds to `config.yaml` (`diagnostics`). A cell's note says how many of its encoders fell below a threshold
at any step, and the lowest values seen, so that a table never shows a number from a collapsed encoder
without saying so. Cells whose runs start from no pretrained encoder (scratch, random) get no note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from dos.errors import DosError
from dos.report.budget import pretrained_folder


@dataclass(frozen=True)
class PretrainingHealth:
    folder: Path
    min_usage_fraction: float        # nan: the run records none (regression trains no prototypes)
    min_effective_rank: float        # nan: no logged step
    problems: list[str]              # the first step's problems that crossed a threshold ([]: none did)


def _thresholds(folder: Path):
    from dos.pretrain.diagnostics import CollapseConfig

    try:
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    section = config.get("diagnostics") if isinstance(config, dict) else None
    if isinstance(section, dict) and "min_prototype_entropy" in section:
        raise DosError(f"{folder / 'config.yaml'}: diagnostics.min_prototype_entropy is the guard of pretrainings "
                       "written before the balanced usage statistic (dos/pretrain/diagnostics.py); their history.csv "
                       "lacks balanced_usage_fraction. Run this pretraining again (delete the folder) to judge it")
    try:
        return CollapseConfig(**section) if isinstance(section, dict) else CollapseConfig()
    except (TypeError, ValueError) as error:
        raise DosError(f"{folder / 'config.yaml'}: diagnostics: {error}") from None


def pretraining_health(folder: str | Path) -> PretrainingHealth | None:
    """The collapse record of one pretraining run folder (None when it has no history.csv)."""
    from dos.engine.loop import History
    from dos.pretrain.diagnostics import collapse_problems

    folder = Path(folder)
    if not (folder / "history.csv").is_file():
        return None
    try:
        rows = History(folder / "history.csv").rows  # the reader the training loop resumes from
    except ValueError as error:
        raise DosError(f"{folder / 'history.csv'}: not a history of numbers ({error})") from None
    thresholds = _thresholds(folder)
    problems: list[str] = []
    for row in rows:
        found = collapse_problems(row, thresholds)
        if found:
            problems = [f"step {int(row.get('step', -1))}: {text}" for text in found]
            break

    def lowest(key: str) -> float:
        values = [row[key] for row in rows if key in row]
        return min(values) if values else math.nan

    return PretrainingHealth(folder, lowest("balanced_usage_fraction"), lowest("effective_rank"), problems)


def _lowest(values: list[float], unit: str) -> str:
    finite = [v for v in values if not math.isnan(v)]
    return f"{min(finite):.2f}{unit}" if finite else "none recorded"


def collapse_note(runs: list[str], base: str | Path = ".") -> str:
    """e.g. 'collapse guard, dos: 0 of 3 encoders flagged (lowest balanced usage fraction 0.52, lowest effective
    rank 15.24)' for the encoders the cell's runs started from ('' when none was pretrained here)."""
    base = Path(base)
    folders = list(dict.fromkeys(f for f in (pretrained_folder((base / run).parent, base) for run in runs)
                                 if f is not None))
    health = [h for h in (pretraining_health(folder) for folder in folders) if h is not None]
    if not health:
        return ""
    flagged = [h for h in health if h.problems]
    names = ", ".join(dict.fromkeys(h.folder.parent.name for h in health))  # the runs' variant folders
    text = (f"collapse guard, {names}: {len(flagged)} of {len(health)} encoders flagged (lowest balanced usage "
            f"fraction {_lowest([h.min_usage_fraction for h in health], '')}, lowest effective rank "
            f"{_lowest([h.min_effective_rank for h in health], '')})")
    for h in flagged:
        text += f"; {'/'.join(h.folder.parts[-2:])}: {h.problems[0]}"
    return text
