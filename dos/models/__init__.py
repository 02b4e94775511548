"""Backbones: the point batch, serialization, sparse ops, Point Transformer V3 and SPUNet (pure PyTorch)."""

from dos.models.backbone import BackboneOutput, upcast
from dos.models.point import Point
from dos.models.ptv3 import PointTransformerV3, ptv3_from_config

__all__ = ["BackboneOutput", "Point", "PointTransformerV3", "ptv3_from_config", "upcast"]
