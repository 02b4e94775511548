"""Run one `dos` command under torch.profiler and print where the time goes.

    python scripts/profile_command.py [--out-table FILE] -- pretrain CONFIG --out RUN --set train.max_steps=10 ...

Only training steps --wait + 1 .. --wait + --active are recorded (one warm-up step before them): profiling a
whole run records millions of events. Prints the wall time per recorded step, the summed self time of the CUDA
kernels per step (how busy the GPU was) and the top operators by self CPU and self CUDA time. DataLoader
workers run in other processes: their work shows only as the main process waiting for batches, so compare the
GPU-busy time with the wall time to see whether a run is bound by the GPU, by the Python/CPU side of the step,
or by data loading (then raise train.num_workers).
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-table", help="also write the tables to this text file")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--wait", type=int, default=3, help="training steps run before profiling starts")
    parser.add_argument("--active", type=int, default=2, help="training steps recorded")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the dos command line, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the dos command after --")

    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    import dos.engine.loop as loop
    from dos.cli import main as dos_main

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    prof = profile(activities=activities, schedule=schedule(wait=args.wait, warmup=1, active=args.active, repeat=1))
    step_times: list[float] = []
    original_train_loop = loop.train_loop

    def profiled_train_loop(*a, step_fn, **kw):
        def step(*sa, **skw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            tic = time.perf_counter()
            result = step_fn(*sa, **skw)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - tic)
            prof.step()
            return result
        return original_train_loop(*a, step_fn=step, **kw)

    loop.train_loop = profiled_train_loop
    try:
        with prof:
            code = dos_main(command)
    finally:
        loop.train_loop = original_train_loop
    first = args.wait + 1
    recorded = step_times[first:first + args.active]
    if len(recorded) < args.active:
        raise SystemExit(f"the command ran {len(step_times)} steps: give it at least {first + args.active}")
    events = prof.key_averages()
    device_busy = sum(getattr(e, "self_device_time_total", 0.0) for e in events) / 1e6 / args.active
    wall = sum(recorded) / args.active
    lines = [f"dos {' '.join(command)}", f"exit code {code}; per recorded step: wall {wall:.3f} s, "
             f"GPU kernels busy {device_busy:.3f} s; all steps (s): {', '.join(f'{t:.2f}' for t in step_times)}"]
    for key in ("self_cpu_time_total",) + (("self_device_time_total",) if torch.cuda.is_available() else ()):
        lines.append(f"\ntop {args.rows} by {key}:")
        lines.append(events.table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    text = "\n".join(lines)
    print(text)
    if args.out_table:
        with open(args.out_table, "w") as f:
            f.write(text + "\n")
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
