"""A simulated spinning LiDAR: beams x azimuth steps of rays, range noise, dropout and intensity.

The profiles mimic the sensors of the outdoor benchmarks (beam count, vertical field of view, range,
mounting height). `parisluco` is a sensor no training dataset uses, for the unseen-domain test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .primitives import Primitives
from .raycast import cast, normals

OUTLIER_LABEL = 1  # raw id of spurious returns (mapped to ignore)


@dataclass(frozen=True)
class SensorProfile:
    name: str
    beams: int
    fov_up: float  # degrees
    fov_down: float  # degrees
    max_range: float  # metres
    min_range: float  # metres (returns off the ego vehicle are cut)
    height: float  # sensor above the road, metres
    azimuth_steps: int  # per revolution at full resolution; scales divide it
    range_noise: float  # std of the range error, metres
    dropout: float  # probability that a return is lost
    intensity_gain: float  # sensor-specific calibration of remission
    horizon_density: float  # 0 = evenly spaced beams; >0 packs beams toward the upper field of view
    outliers: float = 0.001  # fraction of returns replaced by spurious points

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, SensorProfile] = {
    "nuscenes": SensorProfile("nuscenes", beams=32, fov_up=10.0, fov_down=-30.0, max_range=70.0, min_range=2.0,
                              height=1.84, azimuth_steps=1088, range_noise=0.02, dropout=0.05, intensity_gain=1.0,
                              horizon_density=0.0),
    "waymo": SensorProfile("waymo", beams=64, fov_up=2.4, fov_down=-17.6, max_range=75.0, min_range=2.0,
                           height=2.0, azimuth_steps=2650, range_noise=0.015, dropout=0.02, intensity_gain=0.8,
                           horizon_density=0.3),
    "semantickitti": SensorProfile("semantickitti", beams=64, fov_up=2.0, fov_down=-24.8, max_range=80.0,
                                   min_range=2.5, height=1.73, azimuth_steps=2048, range_noise=0.02, dropout=0.03,
                                   intensity_gain=1.2, horizon_density=0.2),
    "parisluco": SensorProfile("parisluco", beams=40, fov_up=15.0, fov_down=-25.0, max_range=100.0, min_range=2.0,
                               height=2.2, azimuth_steps=1800, range_noise=0.01, dropout=0.04, intensity_gain=0.9,
                               horizon_density=0.2),
}


def beam_elevations(profile: SensorProfile) -> np.ndarray:
    """Elevation angle of every beam in degrees, top beam first."""
    u = np.linspace(0.0, 1.0, profile.beams)
    # A power curve packs beams near the top of the field of view (the horizon) as on the 64-beam units.
    u = u ** (1.0 + profile.horizon_density)
    return profile.fov_up + (profile.fov_down - profile.fov_up) * u


def scan(prims: Primitives, profile: SensorProfile, rng: np.random.Generator, azimuth_steps: int,
         sensor_xy: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    """Ray-cast one revolution from a sensor at `sensor_xy`, `profile.height` above z = 0.

    Returns points [N, 4] float32 (x, y, z relative to the sensor, remission in [0, 1]),
    label [N] raw class ids (spurious returns get OUTLIER_LABEL), instance [N] and primitive [N], the row of
    `prims` each return comes off (-1 for a spurious one).
    """
    origin = np.array([sensor_xy[0], sensor_xy[1], profile.height])
    # Only solids within range can be hit: cull them before casting.
    near = np.linalg.norm(prims.center[:, :2] - origin[:2], axis=1) - prims.bounding_radius() < profile.max_range
    rows = np.flatnonzero(near)
    prims = prims.subset(near)
    elevation = np.deg2rad(beam_elevations(profile))
    elevation = elevation + rng.normal(0.0, np.deg2rad(0.01), size=elevation.shape)  # per-beam calibration
    azimuth = np.linspace(-np.pi, np.pi, azimuth_steps, endpoint=False) + rng.uniform(0, 2 * np.pi / azimuth_steps)
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")  # azimuth-major: chunks are narrow wedges
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
    t, idx = cast(prims, origin, dirs, max_t=profile.max_range)
    hit = np.isfinite(t) & (t >= profile.min_range)
    t, idx, dirs = t[hit], idx[hit], dirs[hit]

    # Intensity: material reflectivity x incidence x a mild range fall-off, then sensor gain and noise.
    points = dirs * t[:, None] + origin
    cos_inc = np.abs((normals(prims, points, idx) * dirs).sum(1))
    falloff = 1.0 - 0.4 * t / profile.max_range
    remission = profile.intensity_gain * prims.reflectivity[idx] * (0.25 + 0.75 * cos_inc) * falloff
    remission = np.clip(remission + rng.normal(0.0, 0.02, size=len(t)), 0.0, 1.0)

    # Dropout: a base rate, higher for dark or grazing returns.
    p_drop = profile.dropout + 0.4 * (remission < 0.03) + 0.2 * (cos_inc < 0.1)
    keep = rng.uniform(size=len(t)) >= p_drop
    t, idx, dirs, remission = t[keep], idx[keep], dirs[keep], remission[keep]

    t = t + rng.normal(0.0, profile.range_noise, size=len(t))
    label = prims.label[idx].copy()
    instance = prims.instance[idx].copy()
    # Spurious returns (dust, multipath): a random range along the ray, labelled as outliers.
    spurious = rng.uniform(size=len(t)) < profile.outliers
    t = np.where(spurious, rng.uniform(profile.min_range, np.maximum(t, profile.min_range + 1e-3)), t)
    label[spurious] = OUTLIER_LABEL
    instance[spurious] = 0
    primitive = np.where(spurious, -1, rows[idx])

    xyz = dirs * t[:, None]  # sensor frame: the sensor sits at the origin
    points = np.concatenate([xyz, remission[:, None]], axis=1).astype(np.float32)
    return {"points": points, "label": label, "instance": instance, "primitive": primitive}
