"""Peak-memory probes for benchmarks.

CPU: the process's resident-set high-water mark (VmHWM), reset through /proc/self/clear_refs before the
measured call, minus the resident set at that moment. Large tensors are mmap-backed, so this follows their
allocation. CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats.
"""

from __future__ import annotations

from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """with PeakMemory(device) as peak: ...; then peak.extra_bytes is the peak above the starting level."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.extra_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
            self._start = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.extra_bytes = torch.cuda.max_memory_allocated() - self._start
        else:
            self.extra_bytes = _status_kib("VmHWM") * 1024 - self._start


def timed_repeats(step, repeats: int, device: str = "cpu") -> tuple[list[float], int]:
    """Run `step()` `repeats` times after the caller's warm-up; per-run seconds (device-synchronised) and the
    peak memory above the starting level over all runs."""
    import time

    def sync() -> None:
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    sync()
    times = []
    with PeakMemory(device) as peak:
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t0)
    return times, peak.extra_bytes
