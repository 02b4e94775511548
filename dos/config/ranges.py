"""Range checks for config dataclasses, called from their `__post_init__` (the schema turns the ValueError
into a ConfigError naming the section): every value is checked before a run writes anything."""

from __future__ import annotations

from typing import Any


def check_ranges(config: Any, *, positive: tuple[str, ...] = (), nonnegative: tuple[str, ...] = (),
                 probability: tuple[str, ...] = ()) -> None:
    """positive: > 0; nonnegative: >= 0; probability: in [0, 1]. Tuples are checked element by element."""
    def values(name: str) -> list:
        value = getattr(config, name)
        return list(value) if isinstance(value, (tuple, list)) else [value]

    for name in positive:
        if any(not v > 0 for v in values(name)):
            raise ValueError(f"{name} must be > 0, got {getattr(config, name)!r}")
    for name in nonnegative:
        if any(not v >= 0 for v in values(name)):
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)!r}")
    for name in probability:
        if any(not 0 <= v <= 1 for v in values(name)):
            raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)!r}")
