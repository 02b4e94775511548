"""Model configurations as data: `<family>_<name>.yaml` files in this folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent


def load_model_config(family: str, name_or_path: str | Path) -> dict[str, Any]:
    """Read a model config: a name ("paper", "mini", "smoke") of `<family>_<name>.yaml` here, or a YAML path.
    Lists become tuples (the constructors' sequence arguments)."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{family}_{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{family} config not found: {path}")
    with open(path) as handle:
        config = yaml.safe_load(handle) or {}
    return {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}
