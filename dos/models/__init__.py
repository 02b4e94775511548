"""Backbones: the point batch, serialization, sparse ops and Point Transformer V3 (pure PyTorch)."""

from dos.models.point import Point
from dos.models.ptv3 import PointTransformerV3, PTv3Output, ptv3_from_config, upcast

__all__ = ["Point", "PointTransformerV3", "PTv3Output", "ptv3_from_config", "upcast"]
