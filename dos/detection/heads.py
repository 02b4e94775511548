"""CenterPoint's heads: a shared conv, then per task group a class heatmap and the box regression maps."""

from __future__ import annotations

from torch import Tensor, nn

from dos.detection.config import REGRESSION_HEADS
from dos.detection.neck import conv_bn_relu


def _head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, hidden), nn.Conv2d(hidden, out_channels, 3, padding=1))


class TaskHead(nn.Module):
    """One task group: {"heatmap": [B, classes, H, W] logits, "offset": [B, 2, H, W], "height": 1,
    "size": 3 (log of width, length, height), "rotation": 2 (sin, cos of yaw), "velocity": 2}."""

    def __init__(self, in_channels: int, hidden: int, num_classes: int, heatmap_bias: float) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({"heatmap": _head(in_channels, hidden, num_classes)})
        for name, dim in REGRESSION_HEADS:
            self.heads[name] = _head(in_channels, hidden, dim)
        # a heatmap that starts near sigmoid(bias) everywhere keeps the focal loss from exploding at step 0
        nn.init.constant_(self.heads["heatmap"][-1].bias, heatmap_bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {name: head(x) for name, head in self.heads.items()}


class CenterHead(nn.Module):
    """[B, C, H, W] -> one output dict per task group."""

    def __init__(self, in_channels: int, shared_channels: int, hidden: int, classes_per_task: list[int],
                 heatmap_bias: float = -2.19) -> None:
        super().__init__()
        self.shared = conv_bn_relu(in_channels, shared_channels)
        self.tasks = nn.ModuleList([TaskHead(shared_channels, hidden, n, heatmap_bias) for n in classes_per_task])

    def forward(self, x: Tensor) -> list[dict[str, Tensor]]:
        x = self.shared(x)
        return [task(x) for task in self.tasks]
