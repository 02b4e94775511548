"""The `dos` command line.

Every command lives in its own module, which exposes `configure(parser)` (declare the
arguments) and `run(args) -> int` (do the work). The table below is the whole list: no
registry, no plugin discovery. Command modules keep heavy imports inside `run`, so
`dos --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("bench", "gridsample"), "dos.bench.gridsample", "grid sampling of 1M points against a straightforward numpy FNV-1a hashing implementation"),
    (("bench", "objective"), "dos.bench.objective", "time Zipf-Sinkhorn + softmap loss against Algorithm 1 as written"),
    (("bench", "step"), "dos.bench.step", "cost of one DOS pretraining step (steps/s, aten calls, CUDA launches and syncs), optionally against another commit"),
    (("bench", "backbone"), "dos.bench.backbone", "forward+backward throughput and peak memory of PTv3 (and Pointcept's, side by side, when given its checkout)"),
    (("config", "check"), "dos.config.check", "validate the configs of many runs at once (the workflow's jobs, before any runs)"),
    (("convert", "pointcept"), "dos.models.convert_cli", "convert a Pointcept PT-v3m2 (Sonata) checkpoint to a dos PTv3 state dict"),
    (("data", "generate"), "dos.data.synthetic.cli", "write the synthetic benchmark in the real on-disk formats"),
    (("data", "subsets"), "dos.data.subsets", "write label-efficiency subsets: scene fractions, limited annotations, k-shot lists"),
    (("data", "summary"), "dos.data.summary", "check a dataset's layout: scans, points and per-class counts per split"),
    (("data", "figures"), "dos.data.synthetic.figures", "draw synthetic scenes by class and the class-frequency plot"),
    (("pretrain",), "dos.engine.pretrain", "DOS self-supervised pretraining (and the ablation variants)"),
    (("probe",), "dos.engine.probe", "linear probing of a frozen encoder"),
    (("finetune",), "dos.engine.finetune", "fine-tune encoder + decoder for segmentation (or train from scratch)"),
    (("distill",), "dos.engine.distill", "distill a SPUNet student from a frozen DOS PTv3 teacher (Table 12)"),
    (("evaluate",), "dos.engine.evaluate", "evaluate a probe / finetune run (fragments, test-time augmentation)"),
    (("reproduce",), "dos.reproduce", "run the main job at a scale (the README's first command)"),
    (("report", "table"), "dos.report.tables", "build results/tableN.{csv,md,tex}: reproduced mean ± std over seeds next to the paper's numbers"),
    (("report", "figure"), "dos.report.figures", "draw the paper's comparison figures and sweep curves from table CSVs"),
    (("report", "document"), "dos.report.document", "write the report (Markdown) that shows every table and figure"),
]


class DosError(Exception):
    """An error with a message meant for the user (bad input, bad config): printed without a traceback."""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full command tree; only the command named by `argv` imports its module to declare its arguments."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="dos", description=__doc__.splitlines()[0])
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): parser.add_subparsers(dest="command", required=True)}
    for words, module_name, help_text in COMMANDS:
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = sub.add_subparsers(dest=f"command_{depth}", required=True)
        leaf = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        leaf.set_defaults(_module=module_name)
        if tuple(argv[:len(words)]) == words:
            importlib.import_module(module_name).configure(leaf)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except DosError as error:
        print(f"dos: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dos ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
