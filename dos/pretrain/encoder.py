"""PTv3 as a pretraining encoder: features of the supervision grid, reached by up-casting the coarser stages
to the supervision stage and concatenating them (Sonata's recipe; 0.2 m outdoor / 0.08 m indoor is stage 2 of
a 0.05 m / 0.02 m input grid with stride-2 pooling)."""

from __future__ import annotations

import torch
from torch import nn

from dos.models.point import Point
from dos.models.backbone import upcast
from dos.models.ptv3 import PointTransformerV3
from dos.pretrain.model import EncoderOutput


class PTv3Encoder(nn.Module):
    def __init__(self, backbone: PointTransformerV3, supervision_stage: int = 2):
        super().__init__()
        channels = list(backbone.enc_channels)
        if not 0 <= supervision_stage < len(channels):
            raise ValueError(f"supervision_stage must be in [0, {len(channels) - 1}], got {supervision_stage}")
        self.backbone = backbone
        # forward accepts reference= (see DOSPretrainer.forward) when the backbone does (PTv3)
        self.reuses_reference = isinstance(backbone, PointTransformerV3)
        self.supervision_stage = supervision_stage
        self.embed_channels = channels[0]
        self.out_channels = sum(channels[supervision_stage:])

    def encode_curves(self, grid_coord: torch.Tensor):
        """The backbone's CurveCodes of these voxels (PTv3), or None (SPUNet has no serialization)."""
        encode = getattr(self.backbone, "encode_curves", None)
        return encode(grid_coord) if encode is not None else None

    def forward(self, coord: torch.Tensor, feat: torch.Tensor, grid_coord: torch.Tensor, offset: torch.Tensor,
                token_mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None,
                curves=None, reference: EncoderOutput | None = None,
                reference_rows: torch.Tensor | None = None) -> EncoderOutput:
        """curves: the CurveCodes of grid_coord when already known (`encode_curves`, possibly indexed).
        reference / reference_rows: the output of this encoder (or its EMA copy) on a superset of these voxels
        and the row of each voxel in its input (None: the same voxels), whose neighbour maps and poolings are
        then reused (see `PointTransformerV3.forward`)."""
        point = Point(coord=coord, feat=feat, grid_coord=grid_coord, offset=offset, curves=curves)
        extra = {} if reference is None else {"reference": reference.backbone_output, "reference_rows": reference_rows}
        output = self.backbone(point, token_mask=token_mask, mask_token=mask_token, **extra)
        stages = output.stages
        point_to_unit = torch.arange(coord.shape[0], device=coord.device)
        for s in range(1, self.supervision_stage + 1):
            point_to_unit = stages[s].pooling_inverse[point_to_unit]
        target = stages[self.supervision_stage]
        return EncoderOutput(unit_feat=upcast(stages, self.supervision_stage), point_to_unit=point_to_unit,
                             unit_offset=target.offset, backbone_output=output)
