"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def real_fixtures_root() -> Path:
    """The real dataset samples: `../shared/fixtures/real` beside the repository (DOS_FIXTURES overrides)."""
    return Path(os.environ.get("DOS_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "real"))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    root = real_fixtures_root()
    if not root.is_dir():
        raise FileNotFoundError(
            f"real dataset samples not found at {root}: clone the repository next to shared/ or set DOS_FIXTURES")
    return root
