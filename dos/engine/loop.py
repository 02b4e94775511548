"""The training loop shared by every command: resume, checkpoints, preemption, NaN guard, history, logging.

- Resume: if the run folder holds `checkpoint.pt`, the run continues from it (same command, same folder).
- Checkpoints every `checkpoint_every` steps and at the end, atomically. On SIGTERM or SIGUSR1 (Slurm
  preemption / time limit) the current step finishes, a checkpoint is written, and the process exits with
  code 128 + signal so that the scheduler (or Snakemake's retries) re-runs the same command, which resumes.
- A NaN or Inf loss stops the run with a message naming the step; the last good checkpoint is kept untouched.
- No host synchronisation per step: the loss and statistics may stay tensors; they are read (one stacked
  transfer, and one fused finiteness check) only every `log_every` steps, before every checkpoint and at the
  end, so a NaN is caught before anything is written (a diverged run may go on for up to log_every - 1 steps).
- History: one CSV row per step (loss, lr, schedules, statistics), rewritten atomically with each checkpoint;
  TensorBoard events when the tensorboard package is installed. A progress bar on terminals, log lines otherwise.
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from dos.errors import DosError
from dos.engine import distributed
from dos.engine.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from dos.utils.io import write_text
from dos.config.ranges import check_ranges


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 16            # global batch (split over ranks)
    max_steps: int = 0              # 0: epochs x steps per epoch
    checkpoint_every: int = 100     # steps
    log_every: int = 10             # steps
    num_threads: int = 0            # torch CPU threads; 0 = torch's default
    num_workers: int = 0            # data-loading processes (results do not depend on it)
    bf16: bool = True               # autocast to bfloat16 on CUDA (ignored on CPU)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_ranges(self, nonnegative=("max_steps", "num_threads", "num_workers"))


StepFn = Callable[[int, float], tuple[torch.Tensor, dict[str, "float | torch.Tensor"]]]


@dataclass(frozen=True)
class LoopResult:
    """What one `train_loop` call did, and the work of the run's earlier (interrupted) invocations."""
    start_step: int            # the step this call resumed at (0: fresh)
    steps_done: int            # steps run by this call (0: the run was already complete)
    prior_seconds: float       # wall time of the earlier invocations, up to their last checkpoint
    prior_peak_memory: int     # their peak memory (bytes)

    def wall_seconds(self, this_invocation: float) -> float:
        return self.prior_seconds + this_invocation

    def peak_memory(self, this_invocation: int) -> int:
        return max(self.prior_peak_memory, this_invocation)


class _PendingRows:
    """Per-step (loss, statistics) kept as tensors until `read`, which moves them all to the host at once."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, torch.Tensor, dict]] = []

    def add(self, step: int, loss: torch.Tensor, stats: dict) -> None:
        self.rows.append((step, loss.detach(), stats))

    def read(self) -> list[dict[str, float]]:
        """History rows of the pending steps (in order), emptied; one device-to-host copy for all tensors."""
        tensors = [loss.reshape(()).double() for _, loss, _ in self.rows]
        for _, _, stats in self.rows:
            tensors += [v.detach().reshape(()).double() for v in stats.values() if isinstance(v, torch.Tensor)]
        values = iter(torch.stack(tensors).tolist() if tensors else [])
        losses = [next(values) for _ in self.rows]
        out = []
        for (step, _, stats), loss in zip(self.rows, losses):
            row = {"step": float(step), "loss": loss}
            row.update({k: next(values) if isinstance(v, torch.Tensor) else float(v) for k, v in stats.items()})
            out.append(row)
        self.rows = []
        return out


class _Preemption:
    """Remembers the first SIGTERM / SIGUSR1 so the loop can stop cleanly after the current step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self) -> "_Preemption":
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class History:
    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, float]] = []
        if path.exists():
            with open(path, newline="") as handle:
                self.rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]

    def truncate(self, step: int) -> None:
        self.rows = [row for row in self.rows if row["step"] < step]

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())


def _tensorboard(out_dir: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)


def train_loop(*, out_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, total_steps: int,
               config: TrainConfig, step_fn: StepFn, after_step: Callable[[int, float], None] | None = None,
               checkpoint_extra: dict | None = None, label: str = "train",
               started_at: float | None = None,
               monitor: Callable[[dict[str, float]], None] | None = None) -> LoopResult:
    """Run steps [resume, total_steps). `started_at` (time.perf_counter() when the command started) makes
    the checkpoints record the run's accumulated wall time and peak memory, returned for its summary.
    `monitor` sees every history row when it is read (every log_every steps); it may warn, or raise a DosError
    to stop the run before the rows are recorded (the last checkpoint is kept, as for a NaN loss)."""
    from dos.engine.common import peak_memory_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    main = distributed.is_main()
    start = 0
    prior = {"seconds": 0.0, "peak_memory_bytes": 0}
    started_at = time.perf_counter() if started_at is None else started_at
    device = next(iter(model.parameters()), torch.empty(0)).device
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if int(state["step"]) > total_steps:
            raise DosError(f"{ckpt_path}: the checkpoint is at step {int(state['step'])}, beyond this run's "
                           f"{total_steps} steps; it belongs to a longer run")
        prior.update(state.get("extra", {}).get("ledger", {}))
        model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start = int(state["step"])
        if main:
            print(f"[{label}] resuming from {ckpt_path} at step {start}/{total_steps}", flush=True)
    history = History(out_dir / "history.csv")
    history.truncate(start)
    writer = _tensorboard(out_dir, start) if main and start < total_steps else None
    interactive = sys.stderr.isatty()
    last_saved = start
    tic = time.perf_counter()

    def checkpoint(step: int) -> None:
        nonlocal last_saved
        ledger = {"seconds": prior["seconds"] + time.perf_counter() - started_at,
                  "peak_memory_bytes": max(int(prior["peak_memory_bytes"]), peak_memory_bytes(device))}
        if main:
            # History first: a kill between the two writes leaves rows past the checkpoint's step, which the
            # resume truncates; the other order would lose the rows of the checkpointed steps.
            history.flush()
            save_checkpoint(ckpt_path, model=model, optimizer=optimizer, step=step,
                            extra={**(checkpoint_extra or {}), "ledger": ledger})
        distributed.barrier()
        last_saved = step

    pending = _PendingRows()

    def read_pending() -> float | None:
        """Record the pending steps; raise on the first non-finite loss. Returns the last loss read."""
        rows = pending.read()
        for row in rows:
            if not math.isfinite(row["loss"]):
                raise DosError(f"[{label}] loss is {row['loss']} at step {int(row['step'])} (progress "
                               f"{row['step'] / max(total_steps, 1):.3f}); stopped. The last good checkpoint "
                               f"(step {last_saved}) is kept at {ckpt_path}")
        if monitor is not None and main:
            for row in rows:
                monitor(row)
        for row in rows:
            history.append(row)
            if writer is not None:
                for key, val in row.items():
                    if key != "step":
                        writer.add_scalar(f"{label}/{key}", val, int(row["step"]))
        return rows[-1]["loss"] if rows else None

    with _Preemption() as preemption:
        for step in range(start, total_steps):
            progress = step / max(total_steps, 1)
            loss, stats = step_fn(step, progress)
            pending.add(step, loss, stats)
            if after_step is not None:
                after_step(step, progress)
            done = step + 1
            must_checkpoint = done % config.checkpoint_every == 0 or done == total_steps
            if done % config.log_every == 0 or must_checkpoint or preemption.signum is not None:
                value = read_pending()
                if main and interactive:
                    bar = "#" * int(30 * done / total_steps)
                    print(f"\r[{label}] {bar:<30} {done}/{total_steps} loss {value:.4f}", end="", file=sys.stderr,
                          flush=True)
                elif main and (done % config.log_every == 0 or done == total_steps):
                    rate = (done - start) / max(time.perf_counter() - tic, 1e-9)
                    print(f"[{label}] step {done}/{total_steps} loss {value:.4f} ({rate:.2f} steps/s)", flush=True)
            if must_checkpoint:
                checkpoint(done)
            if preemption.signum is not None:
                if last_saved != done:
                    checkpoint(done)
                if main:
                    print(f"\n[{label}] received signal {preemption.signum}: checkpoint saved at step {done}; "
                          "run the same command again to resume", file=sys.stderr, flush=True)
                raise SystemExit(128 + preemption.signum)
    if main and interactive:
        print(file=sys.stderr)
    if writer is not None:
        writer.close()
    if start == total_steps and main:
        print(f"[{label}] already complete ({total_steps} steps)", flush=True)
    return LoopResult(start_step=start, steps_done=total_steps - start, prior_seconds=float(prior["seconds"]),
                      prior_peak_memory=int(prior["peak_memory_bytes"]))
