"""Per-point colourings (numpy, RGB in [0, 1]): PCA of features, categorical ids ranked by use, prediction
errors. Deterministic: float64 eigendecomposition with a fixed sign convention, percentile scaling."""

from __future__ import annotations

import numpy as np

# Ten well-separated colours (matplotlib's tab10) for the most-used prototypes; the others are grey.
RANKED = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                   [140, 86, 75], [227, 119, 194], [188, 189, 34], [23, 190, 207], [127, 127, 127]],
                  dtype=np.float64) / 255.0
OTHER = np.array([0.82, 0.82, 0.82])
CORRECT = np.array([0.78, 0.78, 0.78])
WRONG = np.array([0.86, 0.08, 0.08])
IGNORED = np.array([0.95, 0.95, 0.95])


def principal_components(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Projections [N, k] of the centred features on their k leading principal axes (covariance eigenvectors
    in float64; each axis signed so that its largest-magnitude loading is positive, which makes the colours
    independent of the eigensolver's sign choice)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    values, vectors = np.linalg.eigh(x.T @ x / max(len(x) - 1, 1))
    axes = vectors[:, ::-1][:, :k]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)
    projection = x @ axes
    if projection.shape[1] < k:  # fewer channels than components: pad with a constant
        projection = np.pad(projection, ((0, 0), (0, k - projection.shape[1])))
    return projection


def robust_unit(values: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Each column mapped linearly so that its `low` / `high` percentiles go to 0 / 1, then clipped: a few
    outlying points do not wash out the rest."""
    lo, hi = np.percentile(values, [low, high], axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return np.clip((values - lo) / span, 0.0, 1.0)


def pca_colors(features: np.ndarray) -> np.ndarray:
    """RGB [N, 3] of features [N, C]: principal components 1-3 as red, green, blue, robustly scaled."""
    return robust_unit(principal_components(features, 3))


def usage_ranks(ids: np.ndarray, num: int) -> np.ndarray:
    """ids 0..num-1 ordered by how many points they have (most first; ties by id)."""
    counts = np.bincount(ids, minlength=num)
    return np.lexsort((np.arange(num), -counts))


def ranked_colors(ids: np.ndarray, num: int) -> tuple[np.ndarray, list[int]]:
    """(RGB [N, 3], the ids that got a colour): the most-used ids get the RANKED colours, the rest grey."""
    order = usage_ranks(ids, num)
    present = order[np.bincount(ids, minlength=num)[order] > 0][:len(RANKED)]
    lut = np.tile(OTHER, (num, 1))
    lut[present] = RANKED[:len(present)]
    return lut[ids], [int(i) for i in present]


def error_mask(truth: np.ndarray, predicted: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """True where a labelled point is predicted wrong (points labelled `ignore_index` or < 0 are never wrong)."""
    labelled = (truth != ignore_index) & (truth >= 0)
    return labelled & (truth != predicted)


def error_colors(truth: np.ndarray, predicted: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """Wrong points red, right ones grey, unlabelled ones near white."""
    colors = np.tile(CORRECT, (len(truth), 1))
    colors[(truth == ignore_index) | (truth < 0)] = IGNORED
    colors[error_mask(truth, predicted, ignore_index)] = WRONG
    return colors


def class_legend(labels: np.ndarray, names: list[str] | tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """(name, colour) of the classes present in `labels`, in class order, with the scene figures' palette."""
    from dos.data.synthetic.figures import CLASS_PALETTE

    present = np.unique(labels[labels >= 0])
    return [(names[i] if i < len(names) else str(i), CLASS_PALETTE[i % len(CLASS_PALETTE)]) for i in present]
