"""Scenes drawn as point scatters: one column per panel (a colouring of the same points), one row per view
(top-down x-y, side x-z). matplotlib is imported inside the functions; figures are made and saved by
`dos.report.figures` (Agg canvas, fixed hash salt, no software/date metadata: byte-reproducible PNGs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure

VIEWS = {"top": ("top-down (x-y)", 0, 1, 2), "side": ("side (x-z)", 0, 2, 1)}  # label, u, v, depth axis
PANEL_WIDTH = 3.0  # inches


@dataclass(frozen=True)
class ColorBar:
    label: str
    cmap: str = "viridis"
    vmin: float = 0.0
    vmax: float = 1.0


@dataclass
class Panel:
    """One colouring of the scene's points. `legend`: (label, RGB) entries; `colorbar`: the scale `colors` were
    mapped with; `on_top`: a drawing priority per point (bool or float): higher is drawn later, so that the
    points that matter (wrong predictions, a prototype's activations) are not hidden."""

    title: str
    colors: np.ndarray
    legend: Sequence[tuple[str, np.ndarray]] = ()
    colorbar: ColorBar | None = None
    on_top: np.ndarray | None = None
    legend_columns: int = 2


def colormap(values: np.ndarray, bar: ColorBar) -> np.ndarray:
    """RGB [N, 3] of scalar values through the colour bar's map and range."""
    import matplotlib

    span = max(bar.vmax - bar.vmin, 1e-12)
    return matplotlib.colormaps[bar.cmap](np.clip((np.asarray(values) - bar.vmin) / span, 0.0, 1.0))[:, :3]


def _limits(values: np.ndarray) -> tuple[float, float]:
    """The 0.5-99.5 percentile range with a 3% margin: sparse far returns do not shrink the scene."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    pad = 0.03 * max(hi - lo, 1e-3)
    return float(lo - pad), float(hi + pad)


def view_heights(xyz: np.ndarray, views: Sequence[str]) -> list[float]:
    """Each view's height in inches for a PANEL_WIDTH-wide panel, from the scene's extent (bounded)."""
    width = np.subtract(*_limits(xyz[:, 0])[::-1])
    heights = []
    for view in views:
        _, _, v, _ = VIEWS[view]
        ratio = np.subtract(*_limits(xyz[:, v])[::-1]) / max(width, 1e-6)
        heights.append(float(np.clip(PANEL_WIDTH * ratio, 0.5, 3.4)))
    return heights


def draw_scene(fig: "Figure | SubFigure", xyz: np.ndarray, panels: Sequence[Panel],
               views: Sequence[str] = ("top", "side"), title: str | None = None) -> None:
    """Draw the panels of one scene into `fig` (a figure or a subfigure)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    xyz = np.asarray(xyz, dtype=np.float64)
    size = float(np.clip(1.2e4 / max(len(xyz), 1), 0.15, 6.0))
    axes = fig.subplots(len(views), len(panels), squeeze=False, height_ratios=view_heights(xyz, views))
    for column, panel in enumerate(panels):
        on_top = np.zeros(len(xyz)) if panel.on_top is None else np.asarray(panel.on_top, dtype=np.float64)
        for row, view in enumerate(views):
            label, u, v, depth = VIEWS[view]
            ax = axes[row, column]
            # top-down: higher points last; side: nearer (smaller y) last; `on_top` points after all others
            key = xyz[:, depth] if view == "top" else -xyz[:, depth]
            order = np.lexsort((key, on_top))
            ax.scatter(xyz[order, u], xyz[order, v], c=panel.colors[order], s=size, linewidths=0,
                       marker="o" if len(xyz) < 5e4 else ".")
            ax.set_xlim(*_limits(xyz[:, u]))
            ax.set_ylim(*_limits(xyz[:, v]))
            ax.set_aspect("equal", adjustable="box")
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(label, fontsize=6)
            if row == 0:
                ax.set_title(panel.title, fontsize=7)
        bottom = axes[-1, column]
        if panel.legend:
            handles = [Patch(color=tuple(np.asarray(rgb, dtype=float)), label=text) for text, rgb in panel.legend]
            bottom.legend(handles=handles, fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                          ncol=panel.legend_columns, frameon=False, handlelength=1.0, columnspacing=0.8)
        if panel.colorbar is not None:
            bar = panel.colorbar
            mappable = ScalarMappable(norm=Normalize(bar.vmin, bar.vmax), cmap=bar.cmap)
            cbar = fig.colorbar(mappable, ax=list(axes[:, column]), location="bottom", shrink=0.85, aspect=25,
                                pad=0.02)
            cbar.set_label(bar.label, fontsize=6)
            cbar.ax.tick_params(labelsize=5)
    if title:
        fig.suptitle(title, fontsize=8)


def scene_figure(xyz: np.ndarray, panels: Sequence[Panel], out: str | os.PathLike, title: str,
                 views: Sequence[str] = ("top", "side"), note: str = "") -> Path:
    """One scene's panels as a PNG (or SVG) file; `note` is printed small under the panels."""
    import matplotlib

    from dos.report.figures import RC, footer, new_figure, save_figure

    legend_rows = max((len(p.legend) + p.legend_columns - 1) // p.legend_columns for p in panels) if panels else 0
    height = sum(view_heights(np.asarray(xyz), views)) + 0.6 + 0.15 * legend_rows + \
        (0.5 if any(p.colorbar for p in panels) else 0.0)
    with matplotlib.rc_context(RC):
        fig = new_figure(PANEL_WIDTH * len(panels) + 0.4, height)
        draw_scene(fig, xyz, panels, views, title)
        footer(fig, note)
        return save_figure(fig, out)


def class_panel(labels: np.ndarray, names: Sequence[str], title: str = "ground truth",
                legend_labels: np.ndarray | None = None) -> Panel:
    """Points coloured by class (the synthetic scene figures' palette), with a legend of the classes present
    in `legend_labels` (default: `labels`)."""
    from dos.data.synthetic.figures import class_colors
    from dos.report.visualize.colors import class_legend

    labels = np.asarray(labels)
    return Panel(title, class_colors(labels.copy()), legend_columns=3,
                 legend=class_legend(labels if legend_labels is None else np.asarray(legend_labels), names))
