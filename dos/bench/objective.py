"""`dos bench objective`: forward + backward of Zipf-Sinkhorn + Softmap loss against Algorithm 1 as written.

For each (N visible points, K prototypes) and each implementation, a fresh Python process builds the inputs
(teacher logits, student logits as a leaf tensor), runs one warm-up, then times `repeats` runs of
targets = sinkhorn(teacher); loss = softmap_loss(student, targets); loss.backward()
and records the peak memory above the inputs. Ratios are ours / reference in the same run.
On CUDA it also reports the memory-traffic floor: the bytes our algorithm must move (reads and writes of
N x K float32 buffers, counted below) divided by the copy bandwidth measured on the same device.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

IMPLEMENTATIONS = ("dos", "reference")
# N x K float32 passes our implementation makes at T = 3 without absorption: sinkhorn: build G (copy, add,
# amax, sub, exp: ~6), 1 + 2x(T-1) mat-vec reads + T column-mass reads, final scale and normalise (~4);
# loss forward: logsumexp (~3), cross/entropy terms (~4); backward: ~4. Reads and writes count once each.
PASSES_T3 = 6 + 5 + 3 + 4 + 3 + 4 + 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--prototypes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--alpha", type=float, default=1.3)
    parser.add_argument("--tau", type=float, default=0.05, help="teacher temperature of the synthetic logits")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here (atomically)")
    parser.add_argument("--_worker", nargs=2, metavar=("IMPL", "NK"), help=argparse.SUPPRESS)


def _worker(impl: str, n: int, k: int, args: argparse.Namespace) -> dict:
    import torch

    from dos.bench.memory import timed_repeats
    from dos.objectives import softmap_loss, zipf_sinkhorn
    from dos.objectives.reference import softmap_loss_reference, zipf_sinkhorn_reference

    device = args.device
    g = torch.Generator(device=device).manual_seed(0)
    teacher = torch.empty(n, k, device=device).uniform_(-1, 1, generator=g).div_(args.tau)
    student = torch.empty(n, k, device=device).uniform_(-1, 1, generator=g).div_(0.1).requires_grad_()

    def step() -> None:
        if impl == "dos":
            targets = zipf_sinkhorn(teacher, args.alpha, args.iters)
            loss = softmap_loss(student, targets)
        else:
            with torch.no_grad():
                targets = zipf_sinkhorn_reference(teacher, args.alpha, args.iters)
            loss = softmap_loss_reference(student, targets)
        loss.backward()
        student.grad = None

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up
    times, peak_bytes = timed_repeats(step, args.repeats, device)
    result = {"impl": impl, "N": n, "K": k, "seconds": sorted(times)[len(times) // 2],
              "peak_extra_MiB": peak_bytes / 2**20, "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and impl == "dos":
        buf = torch.empty(n * k, device=device)
        dst = torch.empty_like(buf)
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            dst.copy_(buf)
        sync()
        bandwidth = 2 * buf.numel() * 4 * 5 / (time.perf_counter() - t0)  # bytes read + written per second
        result["copy_GBps"] = bandwidth / 1e9
        result["traffic_floor_s"] = PASSES_T3 * n * k * 4 / bandwidth
    return result


def run(args: argparse.Namespace) -> int:
    if args._worker:
        impl, nk = args._worker
        n, k = map(int, nk.split("x"))
        print(json.dumps(_worker(impl, n, k, args)))
        return 0
    rows = []
    for n in args.points:
        for k in args.prototypes:
            pair = {}
            for impl in IMPLEMENTATIONS:
                cmd = [sys.executable, "-m", "dos", "bench", "objective", "--_worker", impl, f"{n}x{k}",
                       "--alpha", str(args.alpha), "--tau", str(args.tau), "--iters", str(args.iters),
                       "--repeats", str(args.repeats), "--device", args.device]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(out.stderr, file=sys.stderr)
                    return out.returncode
                pair[impl] = json.loads(out.stdout.strip().splitlines()[-1])
            ours, ref = pair["dos"], pair["reference"]
            row = {"N": n, "K": k, "device": args.device, "threads": ours["threads"],
                   "dos_s": ours["seconds"], "reference_s": ref["seconds"],
                   "speedup": ref["seconds"] / ours["seconds"],
                   "dos_peak_MiB": ours["peak_extra_MiB"], "reference_peak_MiB": ref["peak_extra_MiB"],
                   "memory_ratio": ours["peak_extra_MiB"] / max(ref["peak_extra_MiB"], 1e-9)}
            if "traffic_floor_s" in ours:
                row["traffic_floor_s"] = ours["traffic_floor_s"]
                row["floor_ratio"] = ours["seconds"] / ours["traffic_floor_s"]
            rows.append(row)
            print(f"N={n:>7} K={k:>5} {args.device}: dos {row['dos_s']:.3f}s vs Algorithm-1 transcription "
                  f"{row['reference_s']:.3f}s -> {row['speedup']:.2f}x faster; peak extra memory "
                  f"{row['dos_peak_MiB']:.0f} vs {row['reference_peak_MiB']:.0f} MiB -> "
                  f"{row['memory_ratio']:.2f} of the reference", flush=True)
    if args.out:
        from dos.utils.io import write_json
        from dos.utils.provenance import environment

        write_json(args.out, {"rows": rows, "settings": {k: v for k, v in vars(args).items()
                                                         if k not in ("_worker", "_module", "out")},
                              "command": " ".join(sys.argv), "environment": environment()})
    return 0
