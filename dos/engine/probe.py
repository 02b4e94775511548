"""`dos probe CONFIG --out RUN`: linear probing of a frozen (pretrained or random) encoder. See segmentation.py."""

import argparse

from dos.engine.common import add_run_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dos.engine.segmentation import run_segmentation

    return run_segmentation(args, "probe")
