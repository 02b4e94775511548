"""Figures of the synthetic benchmark: scenes coloured by class and the rank-frequency (Zipf) plot, with the
Zipf exponent fitted by least squares on the log-log rank-frequency points and by maximum likelihood.

matplotlib is imported inside the functions (Agg backend); the PNGs are byte-reproducible (no
software or date metadata, fixed hash salt).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from .writers import read_kitti_scan

CLASS_PALETTE = np.array([
    [128, 64, 128], [244, 35, 232], [152, 251, 152], [70, 70, 70], [107, 142, 35], [140, 90, 40], [0, 0, 142],
    [0, 60, 100], [0, 80, 100], [119, 11, 32], [0, 0, 230], [220, 20, 60], [153, 153, 153], [220, 220, 0],
    [190, 153, 153], [250, 170, 30], [255, 120, 0], [0, 200, 200], [180, 0, 180], [100, 100, 255],
], dtype=np.float64) / 255.0


def class_colors(labels: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of class ids (the palette cycles); ignored points (< 0) are light grey."""
    colors = CLASS_PALETTE[np.maximum(labels, 0) % len(CLASS_PALETTE)]
    colors[labels < 0] = 0.8
    return colors


def _oblique(xyz: np.ndarray, azimuth: float, tilt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen coordinates (u, v) and depth of an oblique view, looking down by `tilt` radians."""
    c, s = np.cos(azimuth), np.sin(azimuth)
    x, y = c * xyz[:, 0] - s * xyz[:, 1], s * xyz[:, 0] + c * xyz[:, 1]
    v = np.cos(tilt) * xyz[:, 2] + np.sin(tilt) * y
    depth = np.cos(tilt) * y - np.sin(tilt) * xyz[:, 2]
    return x, v, depth


def _save(fig, path: Path) -> None:
    from dos.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


def _rc() -> dict:
    return {"svg.hashsalt": "dos-synthetic", "font.size": 8, "figure.dpi": 110}


def lidar_class_counts(root: Path) -> tuple[list[str], np.ndarray]:
    labels = yaml.safe_load((root / "labels.yaml").read_text())
    lmap = labels["learning_map"]
    lut = np.full(max(lmap) + 1, -1, dtype=np.int64)
    lut[list(lmap)] = list(lmap.values())
    counts = np.zeros(len(labels["names"]), dtype=np.int64)
    for path in sorted((root / "sequences").glob("*/labels/*.label")):
        train = lut[np.fromfile(path, dtype=np.uint32) & 0xFFFF]
        counts += np.bincount(train[train >= 0], minlength=len(counts))
    return labels["names"], counts


def rooms_class_counts(root: Path, key: str = "segment200", num_classes: int | None = None) -> np.ndarray:
    """Points per class of every `<split>/scene*/<key>.npy` under root (Pointcept's ScanNet layout); the class
    count comes from the synthetic benchmark's labels.yaml unless given (a real ScanNet root has none)."""
    if num_classes is None:
        labels = yaml.safe_load((root / "labels.yaml").read_text())
        num_classes = len(labels["names200" if key == "segment200" else "names"])
    n = num_classes
    counts = np.zeros(n, dtype=np.int64)
    for path in sorted(root.glob(f"*/scene*/{key}.npy")):
        seg = np.load(path)
        counts += np.bincount(seg[seg >= 0], minlength=n)
    return counts


def _ranked(counts: np.ndarray) -> np.ndarray:
    """The non-zero counts, most frequent first (float64)."""
    counts = np.asarray(counts)
    return np.sort(counts[counts > 0])[::-1].astype(np.float64)


def zipf_slope(counts: np.ndarray) -> float:
    """Slope of log(frequency) against log(rank) over the classes present (about -1 for Zipf's law)."""
    f = _ranked(counts)
    rank = np.arange(1, len(f) + 1)
    return float(np.polyfit(np.log(rank), np.log(f / f.sum()), 1)[0])


def zipf_exponent_mle(counts: np.ndarray, upper: float = 20.0) -> float:
    """Maximum-likelihood Zipf exponent s of rank-frequency counts: the points are draws of a rank r in 1..K with
    P(r) = r^-s / H(K, s), K the classes present. The log-likelihood is concave in s, so its derivative
    -sum n_r log r + N E_s[log r] (increasing in s) is solved by bisection on [0, upper]."""
    n = _ranked(counts)
    log_rank = np.log(np.arange(1, len(n) + 1))
    if len(n) < 2:
        raise ValueError("a Zipf exponent needs at least two classes with points")
    observed = float((n * log_rank).sum() / n.sum())  # mean log rank of the data

    def expected(s: float) -> float:  # E_s[log r], decreasing in s
        w = np.exp(-s * log_rank)
        return float((w * log_rank).sum() / w.sum())

    lo, hi = 0.0, upper
    if expected(lo) <= observed:
        return 0.0  # flatter than uniform: the boundary
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if expected(mid) > observed else (lo, mid)
    return 0.5 * (lo + hi)


def zipf_exponent(counts: np.ndarray, method: str = "lsq") -> float:
    """The Zipf exponent alpha of f(r) ~ r^-alpha: "lsq" = minus the least-squares slope on log-log rank-frequency
    (what the plots draw), "mle" = `zipf_exponent_mle`."""
    if method == "lsq":
        return -zipf_slope(counts)
    if method == "mle":
        return zipf_exponent_mle(counts)
    raise ValueError(f"method must be lsq or mle, got {method!r}")


def draw_frequencies(ax, series: dict[str, np.ndarray], mle: bool = True) -> None:
    """Rank vs fraction of points on log-log axes, one line per dataset, with its least-squares Zipf fit
    (dashed) and the fitted exponents in the legend."""
    for i, (name, counts) in enumerate(series.items()):
        f = _ranked(counts)
        f /= f.sum()
        rank = np.arange(1, len(f) + 1)
        color = f"C{i}"
        alpha = zipf_exponent(counts, "lsq")
        fitted = f"alpha={alpha:.2f} (LSQ" + (f"), {zipf_exponent(counts, 'mle'):.2f} (MLE)" if mle else ")")
        ax.loglog(rank, f, marker="o", ms=2.5, lw=1, color=color, label=f"{name}: {fitted}")
        intercept = np.mean(np.log(f) + alpha * np.log(rank))
        ax.loglog(rank, np.exp(intercept) * rank ** -alpha, ls="--", lw=0.7, color=color)
    ax.set_xlabel("class rank")
    ax.set_ylabel("fraction of points")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=6, title="fitted Zipf exponent (dashed: LSQ fit)", title_fontsize=6)


def plot_frequencies(series: dict[str, np.ndarray], path: str | os.PathLike, title: str) -> Path:
    """Rank vs frequency on log-log axes, one line per dataset, with the fitted Zipf exponents in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(_rc()):
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        draw_frequencies(ax, series)
        ax.set_title(title)
        fig.tight_layout()
        _save(fig, Path(path))
        plt.close(fig)
    return Path(path)


def plot_scenes(scenes: list[tuple[str, np.ndarray, np.ndarray, list[str]]], path: str | os.PathLike,
                extent: float | None = None) -> Path:
    """One row per scene: top-down and oblique scatter, coloured by class. scenes: (title, xyz, label, names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    with plt.rc_context(_rc()):
        fig, axes = plt.subplots(len(scenes), 2, figsize=(9.0, 3.4 * len(scenes)), squeeze=False)
        for row, (title, xyz, label, names) in zip(axes, scenes):
            colors = class_colors(label)
            lim = extent or float(np.abs(xyz[:, :2]).max())
            order = np.argsort(xyz[:, 2], kind="stable")  # higher points drawn last
            row[0].scatter(xyz[order, 0], xyz[order, 1], c=colors[order], s=0.8, linewidths=0)
            row[0].set_xlim(-lim, lim) if extent else None
            row[0].set_ylim(-lim, lim) if extent else None
            row[0].set_aspect("equal")
            row[0].set_title(f"{title}: top-down")
            u, v, depth = _oblique(xyz - xyz.mean(0), np.deg2rad(30), np.deg2rad(35))
            order = np.argsort(-depth, kind="stable")  # far points first
            row[1].scatter(u[order], v[order], c=colors[order], s=0.8, linewidths=0)
            row[1].set_aspect("equal")
            row[1].set_title(f"{title}: oblique")
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
            present = np.unique(label[label >= 0])
            handles = [Patch(color=CLASS_PALETTE[i % len(CLASS_PALETTE)], label=names[i]) for i in present]
            row[1].legend(handles=handles, fontsize=5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        _save(fig, Path(path))
        plt.close(fig)
    return Path(path)


def plot_benchmark(out_dir: str | os.PathLike, fig_dir: str | os.PathLike) -> list[Path]:
    """Figures of a generated benchmark (read back from its files): scenes and class frequencies."""
    out, figs = Path(out_dir), Path(fig_dir)
    lidar_roots = sorted(p for p in out.iterdir() if (p / "sequences").is_dir())
    room_roots = sorted(p for p in out.iterdir() if (p / "labels.yaml").is_file() and not (p / "sequences").is_dir())
    written = []
    scenes = []
    for root in lidar_roots:
        labels = yaml.safe_load((root / "labels.yaml").read_text())
        lmap = labels["learning_map"]
        lut = np.full(max(lmap) + 1, -1, dtype=np.int64)
        lut[list(lmap)] = list(lmap.values())
        points, semantic, _ = read_kitti_scan(root, labels["splits"]["train"][0], 0)
        keep = np.abs(points[:, :2]).max(1) < 40.0
        scenes.append((root.name, points[keep, :3], lut[semantic[keep]], labels["names"]))
    if scenes:
        written.append(plot_scenes(scenes, figs / "synthetic_lidar_scenes.png", extent=40.0))
        series = {root.name: lidar_class_counts(root)[1] for root in lidar_roots}
        written.append(plot_frequencies(series, figs / "synthetic_lidar_frequency.png",
                                        "outdoor class frequencies (rank vs fraction)"))
    for root in room_roots:
        labels = yaml.safe_load((root / "labels.yaml").read_text())
        rooms = []
        for scene in sorted((root / "train").iterdir())[:3]:
            xyz = np.load(scene / "coord.npy")
            rooms.append((scene.name, xyz, np.load(scene / "segment20.npy"), labels["names"]))
        written.append(plot_scenes(rooms, figs / f"{root.name}_rooms.png"))
        written.append(plot_frequencies({"20 classes": rooms_class_counts(root, "segment20"),
                                         "200 classes": rooms_class_counts(root, "segment200")},
                                        figs / f"{root.name}_frequency.png",
                                        "indoor class frequencies (rank vs fraction)"))
    return written


def configure(parser) -> None:
    """`dos data figures DATA_DIR FIG_DIR`: scenes coloured by class and the log-log class frequencies."""
    parser.add_argument("data_dir", help="a synthetic benchmark folder (with manifest.json)")
    parser.add_argument("fig_dir", help="where to write the PNG figures")


def run(args) -> int:
    for path in plot_benchmark(args.data_dir, args.fig_dir):
        print(f"figure: {path}")
    return 0
