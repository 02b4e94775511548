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

from dos.errors import DosError  # noqa: F401  (also imported from here by older modules)

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("bench", "gridsample"), "dos.bench.gridsample", "grid sampling of 1M points against a straightforward numpy FNV-1a hashing implementation"),
    (("bench", "objective"), "dos.bench.objective", "time Zipf-Sinkhorn + softmap loss against Algorithm 1 as written"),
    (("bench", "step"), "dos.bench.step", "cost of one DOS pretraining step (steps/s, aten calls, CUDA launches and syncs), optionally against another commit"),
    (("bench", "backbone"), "dos.bench.backbone", "forward+backward throughput and peak memory of PTv3 (and Pointcept's, side by side, when given its checkout)"),
    (("config", "check"), "dos.config.check", "validate the configs of many runs at once (the workflow's jobs, before any runs)"),
    (("convert", "pointcept"), "dos.models.convert_cli", "convert a Pointcept PT-v3m2 (Sonata) checkpoint to a dos PTv3 state dict"),
    (("data", "generate"), "dos.data.synthetic.cli", "write the synthetic benchmark in the real on-disk formats"),
    (("data", "prepare", "scannet"), "dos.data.prepare.scannet", "convert raw ScanNet v2 (meshes, segments, aggregations) into the Pointcept layout the scannet readers read"),
    (("data", "prepare", "s3dis"), "dos.data.prepare.s3dis", "convert raw S3DIS (Stanford3dDataset_v1.2 annotation text files) into the Pointcept layout the s3dis reader reads"),
    (("data", "subsets"), "dos.data.subsets", "write label-efficiency subsets: scene fractions, limited annotations, k-shot lists"),
    (("data", "summary"), "dos.data.summary", "check a dataset's layout: scans, points and per-class counts per split"),
    (("data", "figures"), "dos.data.synthetic.figures", "draw synthetic scenes by class and the class-frequency plot"),
    (("pretrain",), "dos.engine.pretrain", "DOS self-supervised pretraining (and the ablation variants)"),
    (("probe",), "dos.engine.probe", "linear probing of a frozen encoder"),
    (("finetune",), "dos.engine.finetune", "fine-tune encoder + decoder for segmentation (or train from scratch)"),
    (("detect",), "dos.engine.detect", "3D object detection: CenterPoint on a (pretrained) backbone, nuScenes metrics (Table 2)"),
    (("distill",), "dos.engine.distill", "distill a SPUNet student from a frozen DOS PTv3 teacher (Table 12)"),
    (("evaluate",), "dos.engine.evaluate", "evaluate a probe / finetune run (fragments, test-time augmentation)"),
    (("reproduce",), "dos.reproduce", "run the main job at a scale (the README's first command)"),
    (("report", "table"), "dos.report.tables", "build results/tableN.{csv,md,tex}: reproduced mean ± std over seeds next to the paper's numbers"),
    (("report", "claims"), "dos.report.claims", "decide each of the paper's claims: paired differences over seeds with 95% confidence intervals and verdicts"),
    (("report", "figure"), "dos.report.figures", "draw the paper's comparison figures and sweep curves from table CSVs"),
    (("report", "document"), "dos.report.document", "write the report (Markdown) that shows every table and figure"),
    (("visualize", "pca"), "dos.report.visualize.pca", "PCA colours (RGB) of a frozen encoder's full-resolution features on one scene"),
    (("visualize", "prototypes"), "dos.report.visualize.prototypes", "prototype activation maps (teacher softmaps, argmax prototype) of a pretraining run on one scene"),
    (("visualize", "predictions"), "dos.report.visualize.predictions", "a probe / finetune run's predictions against the ground truth on one scene, errors highlighted"),
    (("visualize", "boxes"), "dos.report.visualize.boxes", "a dos detect run's predicted boxes against the ground truth on one scene, bird's-eye view"),
    (("visualize", "figure4"), "dos.report.visualize.figure4", "the paper's Figure 4: Zipf class frequencies and alpha 1.3 vs alpha 0 prototype maps"),
    (("visualize", "figure5"), "dos.report.visualize.figure5", "the paper's Figure 5: ground truth and zero-shot predictions on an unseen-domain scene"),
]



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


class _ReaderMayLeave:
    """A text stream that goes on silently when its reader has left (`dos pretrain ... | head`): a training
    run must not end because nobody reads its log lines any more."""

    def __init__(self, stream):
        self._stream, self._gone = stream, False

    def _reader_left(self) -> None:
        """Point the stream's file descriptor at /dev/null, so that its unwritten buffer (flushed again at
        exit) cannot fail later."""
        import os

        self._gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _os_error_message(error: OSError) -> str:
    where = error.filename if error.filename is not None else "dos"
    return f"{where}: {error.strerror or error}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(args._module)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ReaderMayLeave(sys.stdout), _ReaderMayLeave(sys.stderr)
    try:
        return int(module.run(args) or 0)
    except DosError as error:
        print(f"dos: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # permissions, full disk, a folder where a file was expected, ...: name the file
        print(f"dos: error: {_os_error_message(error)}", file=sys.stderr)
        return 2
    finally:
        sys.stdout, sys.stderr = streams


if __name__ == "__main__":
    raise SystemExit(main())
