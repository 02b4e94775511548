"""A small SECOND-FPN-like 2D neck over the BEV image: a full-resolution stage and a stride-2 stage, each
brought back to full resolution (1x1 conv / transposed conv) and concatenated."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class BevNeck(nn.Module):
    """[B, C_in, H, W] -> [B, 2 * up_channels, H, W]."""

    def __init__(self, in_channels: int, channels: tuple[int, int] = (64, 128), blocks: tuple[int, int] = (2, 2),
                 up_channels: int = 64) -> None:
        super().__init__()
        stages, previous = [], in_channels
        for stage, (width, depth) in enumerate(zip(channels, blocks)):
            layers = [conv_bn_relu(previous, width, stride=1 if stage == 0 else 2)]
            layers += [conv_bn_relu(width, width) for _ in range(depth)]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.ups = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels[0], up_channels, 1, bias=False), nn.BatchNorm2d(up_channels),
                          nn.ReLU(inplace=True)),
            nn.Sequential(nn.ConvTranspose2d(channels[1], up_channels, 2, stride=2, bias=False),
                          nn.BatchNorm2d(up_channels), nn.ReLU(inplace=True))])
        self.out_channels = 2 * up_channels

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        outs = []
        for stage, up in zip(self.stages, self.ups):
            x = stage(x)
            outs.append(up(x)[..., :height, :width])  # an odd H or W comes back one cell larger: crop it
        return torch.cat(outs, dim=1)
