"""Unit normals estimated from a point cloud alone (for raw S3DIS, whose release has no normals).

Each point's normal is the direction of least spread of its k nearest neighbours (the point included): the
eigenvector of the smallest eigenvalue of their covariance (PCA). On a plane this is the plane's normal; on a
smooth surface sampled densely compared with its curvature it is the tangent plane's normal.

These are *estimated* normals. Pointcept's S3DIS normals (`preprocess_s3dis.py --parse_normal`) come from the
Stanford 2D-3D-S meshes instead, so rooms prepared here are close to, not byte-comparable with, Pointcept's
preprocessing: edges and thin objects get smoothed normals, and the sign follows the rule below rather than the
mesh's winding.

Orientation: every normal is flipped to point towards the room's centre (the middle of its bounding box), i.e.
n . (centre - p) >= 0. S3DIS rooms were scanned from inside, so the visible side of the floor faces up, of the
ceiling down and of the walls into the room; pointing towards the centre gives exactly those signs, as a mesh
built from the scans would (a flat +z rule would instead turn the ceiling's normals into the ceiling). Objects
inside the room get the side facing the centre (the top of a table below the centre's height points up); the
far side of a closed object points inwards, the usual price of a viewpoint rule without a mesh. A normal
exactly perpendicular to the direction to the centre keeps n_z >= 0.

Cost: one KD-tree (scipy.spatial.cKDTree) over the room, then fixed-size chunks of queries: memory is the tree
plus O(chunk * k), not O(N * k), so a room of several million points stays well below 4 GB. scipy is not a
core dependency of `dos` (it comes with the workflow and dev extras), so it is imported only here, when
normals are estimated.
"""

from __future__ import annotations

import numpy as np

from dos.errors import DosError

NEIGHBOURS = 16
CHUNK = 1 << 16


def estimate_normals(coord: np.ndarray, neighbours: int = NEIGHBOURS, chunk: int = CHUNK) -> np.ndarray:
    """float32 [N, 3] unit normals of `coord` [N, 3], oriented towards the bounding box's centre; the k
    neighbours are k distinct positions (equal points share one normal).

    A point whose neighbours do not span a plane (fewer than 3 distinct points, or all on one line) gets a
    unit vector in an arbitrary direction orthogonal to that line: the cloud does not define its normal."""
    if neighbours < 3:
        raise DosError(f"normals need at least 3 neighbours per point (got {neighbours})")
    try:
        from scipy.spatial import cKDTree  # optional: see the module docstring
    except ImportError:
        raise DosError("estimating normals needs scipy (pip install scipy, or the workflow extra); "
                       "or prepare without normals (--no-normals)") from None
    if len(coord) == 0:
        return np.zeros((0, 3), dtype=np.float32)
    # Repeated points (the release has some) count once: k copies of one point would leave it no plane, and a
    # KD-tree cannot split a pile of equal points, so a large pile would make every query scan all of it.
    unique, inverse = np.unique(np.asarray(coord), axis=0, return_inverse=True)
    points = unique.astype(np.float64)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    points = points - centre  # the centre at the origin: better conditioned, and the rule reads n . p <= 0
    tree = cKDTree(points)
    k = min(neighbours, len(points))
    normals = np.empty((len(points), 3), dtype=np.float32)
    for start in range(0, len(points), chunk):
        queries = points[start:start + chunk]
        _, index = tree.query(queries, k=k)
        index = index.reshape(len(queries), k)  # k == 1 returns a flat array
        normals[start:start + chunk] = _orient(_smallest_direction(points[index]), queries)
    return normals[inverse.reshape(-1)]


def _smallest_direction(groups: np.ndarray) -> np.ndarray:
    """[M, 3] unit eigenvectors of the smallest eigenvalue of each group's covariance ([M, k, 3] points)."""
    centred = groups - groups.mean(axis=1, keepdims=True)
    covariance = np.einsum("mki,mkj->mij", centred, centred)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues; vectors are columns, unit length
    return vectors[:, :, 0]


def _orient(normals: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Flip each normal to point towards the origin (the room's centre): n . (0 - p) >= 0, ties to n_z >= 0."""
    towards = -np.einsum("mi,mi->m", normals, points)
    flip = (towards < 0) | ((towards == 0) & (normals[:, 2] < 0))
    return np.where(flip[:, None], -normals, normals)
