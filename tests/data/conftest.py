"""Fixtures of the data tests: one smoke-scale synthetic benchmark per session (about 3 s to generate)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_benchmark(tmp_path_factory) -> Path:
    """The smoke synthetic benchmark (seed 0): synthetic-{nuscenes,waymo,semantickitti,parisluco} in the
    SemanticKITTI layout (format synthetic-lidar) and synthetic-scannet (format synthetic-rooms)."""
    from dos.data.synthetic.benchmark import generate_benchmark

    out = tmp_path_factory.mktemp("smoke_benchmark")
    generate_benchmark(out, "smoke", 0, log=lambda *_: None)
    return out
