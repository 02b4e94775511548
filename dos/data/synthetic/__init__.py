"""The synthetic benchmark: procedural street scenes scanned by simulated LiDARs and furnished rooms
scanned from a few viewpoints, written in the real datasets' on-disk formats (SemanticKITTI layout,
Pointcept ScanNet layout) so that the real readers load them.

The public functions are loaded on first use, so that importing the `dos data generate` command
module (done by `dos --help`) stays cheap.
"""

__all__ = ["generate_benchmark", "generate_lidar", "generate_rooms", "load_scales", "plot_benchmark"]


def __getattr__(name: str):
    if name in ("generate_benchmark", "generate_lidar", "generate_rooms", "load_scales"):
        from . import benchmark

        return getattr(benchmark, name)
    if name == "plot_benchmark":
        from .figures import plot_benchmark

        return plot_benchmark
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
