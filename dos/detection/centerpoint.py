"""CenterPoint on any dos backbone: the backbone's point set -> BEV image -> 2D neck -> per-task heads.

    model = CenterPoint(CenterPointConfig(in_channels=backbone_channels))
    outputs = model(feat, coord, offset)          # feat [N, C], coord [N, 3] metres, offset [B]
    losses = model.loss(outputs, gt_boxes)        # gt_boxes: list[Boxes], one per sample
    detections = model.predict(outputs)           # list[(Boxes, scores)], one per sample
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from dos.data.boxes import Boxes
from dos.detection.bev import scatter_to_bev
from dos.detection.config import CenterPointConfig
from dos.detection.decode import decode
from dos.detection.heads import CenterHead
from dos.detection.losses import centerpoint_loss
from dos.detection.neck import BevNeck
from dos.detection.targets import TaskTargets, build_targets


class CenterPoint(nn.Module):
    def __init__(self, config: CenterPointConfig) -> None:
        super().__init__()
        if config.in_channels < 1:
            raise ValueError("CenterPointConfig.in_channels must be the backbone's feature width (>= 1)")
        self.config = config
        self.grid = config.grid
        self.neck = BevNeck(config.in_channels, config.neck_channels, config.neck_blocks, config.neck_up_channels)
        self.head = CenterHead(self.neck.out_channels, config.head_channels, config.head_conv,
                               [len(group) for group in config.tasks], config.heatmap_bias)

    def forward(self, feat: Tensor, coord: Tensor, offset: Tensor) -> list[dict[str, Tensor]]:
        """One dict per task group: "heatmap" [B, classes, H, W] logits and the regression maps "offset",
        "height", "size", "rotation", "velocity" (see `dos.detection.heads.TaskHead`)."""
        bev = scatter_to_bev(feat, coord, offset, self.grid, self.config.pool)
        return self.head(self.neck(bev))

    def targets(self, boxes: list[Boxes]) -> list[TaskTargets]:
        c = self.config
        return build_targets(boxes, self.grid, c.task_labels, c.max_objects, c.min_overlap, c.min_radius,
                             device=self.head.shared[0].weight.device)

    def loss(self, outputs: list[dict[str, Tensor]], boxes: list[Boxes]) -> dict[str, Tensor]:
        """{"loss": heatmap_weight * heatmap + regression_weight * regression, "heatmap", "regression"}."""
        c = self.config
        if len(boxes) != outputs[0]["heatmap"].shape[0]:
            raise ValueError(f"{len(boxes)} box sets for a batch of {outputs[0]['heatmap'].shape[0]}")
        return centerpoint_loss(outputs, self.targets(boxes), c.code_weights, c.heatmap_weight,
                                c.regression_weight)

    def predict(self, outputs: list[dict[str, Tensor]]) -> list[tuple[Boxes, np.ndarray]]:
        c = self.config
        return decode(outputs, self.grid, c.task_labels, c.top_k, c.score_threshold, c.nms_radius, c.max_boxes)
