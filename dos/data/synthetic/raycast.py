"""Vectorised ray casting against boxes, vertical cylinders and ellipsoids.

Every ray is tested against every solid of a chunk at once ([rays, solids] arrays). A cheap
bounding-sphere test first keeps only the solids that some ray of the chunk can reach, so the
exact tests run on few solids when a chunk covers a narrow bundle of directions (a LiDAR wedge).
"""

from __future__ import annotations

import numpy as np

from .primitives import BOX, CYLINDER, ELLIPSOID, Primitives

EPS = 1e-6


def _to_local(vectors: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate [..., S, 3] vectors by -yaw (per solid S) about z."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    return np.stack([cos * x + sin * y, -sin * x + cos * y, z], axis=-1)


def _box_hits(p: np.ndarray, d: np.ndarray, half: np.ndarray) -> np.ndarray:
    safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1 = (-half - p) / safe
    t2 = (half - p) / safe
    t_near = np.minimum(t1, t2).max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    t = np.where(t_near > EPS, t_near, t_far)  # a ray starting inside a box hits its far side
    return np.where((t_far >= t_near) & (t > EPS), t, np.inf)


def _cylinder_hits(p: np.ndarray, d: np.ndarray, half: np.ndarray) -> np.ndarray:
    r, hz = half[..., 0], half[..., 2]
    px, py, pz = p[..., 0], p[..., 1], p[..., 2]
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    a = dx * dx + dy * dy
    b = 2.0 * (px * dx + py * dy)
    c = px * px + py * py - r * r
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    a_safe = np.where(a < 1e-12, 1e-12, a)
    best = np.full(p.shape[:-1], np.inf)
    for t in ((-b - root) / (2.0 * a_safe), (-b + root) / (2.0 * a_safe)):
        ok = (disc >= 0.0) & (a >= 1e-12) & (t > EPS) & (np.abs(pz + t * dz) <= hz)
        best = np.where(ok & (t < best), t, best)
    dz_safe = np.where(np.abs(dz) < 1e-12, 1e-12, dz)
    for cap in (-hz, hz):
        t = (cap - pz) / dz_safe
        x, y = px + t * dx, py + t * dy
        ok = (t > EPS) & (x * x + y * y <= r * r)
        best = np.where(ok & (t < best), t, best)
    return best


def _ellipsoid_hits(p: np.ndarray, d: np.ndarray, half: np.ndarray) -> np.ndarray:
    ps, ds = p / half, d / half
    a = (ds * ds).sum(-1)
    b = 2.0 * (ps * ds).sum(-1)
    c = (ps * ps).sum(-1) - 1.0
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t_near = (-b - root) / (2.0 * a)
    t_far = (-b + root) / (2.0 * a)
    t = np.where(t_near > EPS, t_near, t_far)
    return np.where((disc >= 0.0) & (t > EPS), t, np.inf)


_HITS = {BOX: _box_hits, CYLINDER: _cylinder_hits, ELLIPSOID: _ellipsoid_hits}


def cast(prims: Primitives, origins: np.ndarray, dirs: np.ndarray, max_t: float = np.inf,
         chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """First hit of every ray. origins [R, 3] (or [3]), dirs [R, 3] unit vectors.

    Returns (t [R] distance along the ray, inf on a miss; index [R] of the solid hit, -1 on a miss).
    """
    dirs = np.asarray(dirs, dtype=np.float64)
    origins = np.broadcast_to(np.asarray(origins, dtype=np.float64), dirs.shape)
    n = len(dirs)
    t_out = np.full(n, np.inf)
    idx_out = np.full(n, -1, dtype=np.int64)
    radius = prims.bounding_radius()
    center_sq = (prims.center ** 2).sum(1)
    cos_all, sin_all = np.cos(prims.yaw), np.sin(prims.yaw)
    for start in range(0, n, chunk):
        o, d = origins[start:start + chunk], dirs[start:start + chunk]
        # Bounding-sphere culling with matrix products only: no [rays, solids, 3] temporaries.
        proj = d @ prims.center.T - (o * d).sum(1)[:, None]
        dist_sq = center_sq[None] - 2.0 * (o @ prims.center.T) + (o * o).sum(1)[:, None]
        perp_sq = dist_sq - np.where(proj > 0.0, proj * proj, 0.0)
        reach = (perp_sq <= radius ** 2) & (proj > -radius) & (proj - radius < max_t)
        keep = np.flatnonzero(reach.any(axis=0))
        if len(keep) == 0:
            continue
        best_t = np.full(len(d), np.inf)
        best_i = np.full(len(d), -1, dtype=np.int64)
        for kind, hits in _HITS.items():
            sel = keep[prims.kind[keep] == kind]
            if len(sel) == 0:
                continue
            cos, sin = cos_all[sel], sin_all[sel]
            p = _to_local(o[:, None, :] - prims.center[sel][None], cos, sin)
            dl = _to_local(np.broadcast_to(d[:, None, :], p.shape), cos, sin)
            t = hits(p, dl, prims.half[sel][None])
            t = np.where(reach[:, sel], t, np.inf)
            j = t.argmin(axis=1)
            tj = t[np.arange(len(d)), j]
            better = tj < best_t
            best_t = np.where(better, tj, best_t)
            best_i = np.where(better, sel[j], best_i)
        hit = best_t <= max_t
        t_out[start:start + chunk] = np.where(hit, best_t, np.inf)
        idx_out[start:start + chunk] = np.where(hit, best_i, -1)
    return t_out, idx_out


def normals(prims: Primitives, points: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Outward unit normal of solid `index[i]` at surface point `points[i]`."""
    center, half = prims.center[index], prims.half[index]
    cos, sin = np.cos(prims.yaw[index]), np.sin(prims.yaw[index])
    p = _to_local(points - center, cos, sin)
    kind = prims.kind[index]
    n = np.zeros_like(p)
    q = p / half
    # Box: the face whose normalised coordinate is largest in magnitude.
    axis = np.abs(q).argmax(axis=1)
    box_n = np.zeros_like(p)
    box_n[np.arange(len(p)), axis] = np.sign(q[np.arange(len(p)), axis])
    # Cylinder: the cap when the point is relatively higher than it is far from the axis.
    radial = np.hypot(p[:, 0], p[:, 1])
    on_cap = np.abs(q[:, 2]) >= radial / half[:, 0]
    cyl_n = np.where(on_cap[:, None], np.stack([0 * radial, 0 * radial, np.sign(p[:, 2])], 1),
                     np.stack([p[:, 0], p[:, 1], 0 * radial], 1) / np.maximum(radial, 1e-12)[:, None])
    ell_n = p / half ** 2
    n = np.where((kind == BOX)[:, None], box_n, np.where((kind == CYLINDER)[:, None], cyl_n, ell_n))
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # Back to the world frame: rotate by +yaw.
    return np.stack([cos * n[:, 0] - sin * n[:, 1], sin * n[:, 0] + cos * n[:, 1], n[:, 2]], axis=1)
