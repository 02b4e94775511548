"""`dos finetune CONFIG --out RUN`: encoder + decoder fine-tuning (or training from scratch). See segmentation.py."""

import argparse

from dos.engine.common import add_run_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dos.engine.segmentation import run_segmentation

    return run_segmentation(args, "finetune")
