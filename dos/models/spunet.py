"""SPUNet: a sparse-convolution U-Net of the MinkUNet family (the design of Pointcept's SpUNet-v1m1), on the
pure-torch sparse conv of `dos.models.ops.sparse_conv`.

Network (defaults = the paper-size model, 4 stages):
* stem: SubMConv3d k=5 -> BatchNorm -> ReLU at full resolution (`base_channels`);
* encoder stage s: SparseConv3d k=2 s=2 (down to grid // 2) -> BN -> ReLU, then `layers[s]` BasicBlocks of
  `channels[s]` channels;
* decoder level s (coarse to fine): SparseInverseConv3d back to the voxels of level s -> BN -> ReLU, concat
  the encoder skip of level s (the stem output at level 0), then `layers[-1 - s]` BasicBlocks of
  `channels[-1 - s]` channels. The decoder output is at the input voxels with `channels[-1]` channels.
BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + proj(x)) with two SubMConv3d k=3 (no bias); proj is the
identity, or a bias-free Linear (= SubMConv3d k=1) + BN when the width changes (first decoder block).
BatchNorm1d runs over points (rows of the [N, C] features), eps 1e-3, momentum 0.01 as in Pointcept; in eval
mode it is a fixed affine map, so a cloud's output does not depend on its batch mates. In train mode the
batch statistics pool all clouds of the batch (as every BN U-Net does).

`channel_multiplier` scales `base_channels` and every entry of `channels` (Table 12's "double channels" = 2).

Outputs (`BackboneOutput`, the same type as PTv3, so probes and pretrainers treat both backbones alike):
* stages: [stem output (full resolution), encoder stage 0 (grid // 2), ..., encoder stage 3 (grid // 16)];
  each coarser stage carries `pooling_inverse` (fine row -> coarse row) and `pooling_parent`, so
  `dos.models.backbone.upcast(stages, 0)` concatenates every stage at full resolution (linear probing);
* decoded (enc_mode=False): the decoder output at the input points.
`enc_channels` lists the width of every stage, stem first, like PTv3's, so `dos.pretrain.encoder.PTv3Encoder`
(up-cast to the supervision stage) and the probes take either backbone.
The input must hold one point per (cloud, voxel) (grid-sample first), as for every sparse conv here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dos.models.ops.scatter import segment_mean
from dos.models.ops.sparse_conv import (DownsampleMap, NeighbourMap, SparseConv3d, SparseInverseConv3d,
                                        SubMConv3d, downsample_map)
from dos.models.point import Point, batch_to_offset
from dos.models.backbone import BackboneOutput

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BN_EPS, BN_MOMENTUM = 1e-3, 0.01


def batch_norm(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Residual block of two submanifold k=3 convs, each followed by BN (ReLU after the first and the sum)."""

    def __init__(self, in_channels: int, channels: int, conv_backend: str = "auto"):
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, channels, 3, bias=False, backend=conv_backend)
        self.bn1 = batch_norm(channels)
        self.conv2 = SubMConv3d(channels, channels, 3, bias=False, backend=conv_backend)
        self.bn2 = batch_norm(channels)
        self.proj = (nn.Identity() if in_channels == channels
                     else nn.Sequential(nn.Linear(in_channels, channels, bias=False), batch_norm(channels)))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, neighbours: NeighbourMap) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x, neighbours)))
        out = self.bn2(self.conv2(out, neighbours))
        return self.relu(out + self.proj(x))


class ConvBNReLU(nn.Module):
    """A sparse conv (down, inverse or submanifold) followed by BN and ReLU."""

    def __init__(self, conv: nn.Module, channels: int):
        super().__init__()
        self.conv, self.bn, self.relu = conv, batch_norm(channels), nn.ReLU()

    def forward(self, x: Tensor, maps: NeighbourMap | DownsampleMap) -> Tensor:
        return self.relu(self.bn(self.conv(x, maps)))


def _scaled(channels: int, multiplier: float) -> int:
    return max(1, int(round(channels * multiplier)))


class SPUNet(nn.Module):
    def __init__(self, in_channels: int = 4, base_channels: int = 32,
                 channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
                 layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2), channel_multiplier: float = 1,
                 enc_mode: bool = False, conv_backend: str = "auto"):
        super().__init__()
        if len(channels) != len(layers) or len(layers) % 2:
            raise ValueError(f"channels ({len(channels)}) and layers ({len(layers)}) need the same even length")
        num_stages = len(layers) // 2
        self.num_stages, self.enc_mode = num_stages, enc_mode
        base = _scaled(base_channels, channel_multiplier)
        widths = [_scaled(c, channel_multiplier) for c in channels]
        # width of every resolution level's encoder output: level 0 = stem, level s + 1 = encoder stage s
        self.enc_channels: tuple[int, ...] = (base, *widths[:num_stages])

        self.stem = ConvBNReLU(SubMConv3d(in_channels, base, 5, bias=False, backend=conv_backend), base)
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        for s in range(num_stages):
            self.down.append(ConvBNReLU(SparseConv3d(self.enc_channels[s], widths[s], stride=2), widths[s]))
            self.enc.append(nn.ModuleList(BasicBlock(widths[s], widths[s], conv_backend) for _ in range(layers[s])))

        # Index s of up/dec is decoder level s (the resolution of encoder level s), finest first.
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        if not enc_mode:
            dec_widths = [widths[-1 - s] for s in range(num_stages)]
            for s in range(num_stages):
                coarser = dec_widths[s + 1] if s + 1 < num_stages else self.enc_channels[-1]
                self.up.append(ConvBNReLU(SparseInverseConv3d(coarser, dec_widths[s], stride=2), dec_widths[s]))
                self.dec.append(nn.ModuleList(
                    BasicBlock(dec_widths[s] + self.enc_channels[s] if i == 0 else dec_widths[s], dec_widths[s],
                               conv_backend)
                    for i in range(layers[-1 - s])))
            self.out_channels = dec_widths[0]
        else:
            self.out_channels = self.enc_channels[-1]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (SubMConv3d, SparseConv3d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def layer_ids(self) -> None:
        """No layer-wise lr decay: SPUNet trains every layer at the same lr (the PTv3 recipe's decay is per
        transformer block)."""
        return None

    def forward(self, point: Point, token_mask: Tensor | None = None, mask_token: Tensor | None = None
                ) -> BackboneOutput:
        """Run the network on a batch with one point per (cloud, voxel); the input Point is not modified.

        token_mask [N] bool with mask_token [base channels] (PTv3's interface, for the naive student inputs):
        masked points enter the stem with zero features, so their inputs reach no other point through the
        k=5 stem conv, and their stem outputs are replaced by mask_token."""
        level = replace(point, codes=None, order=None, inverse=None, pooling_inverse=None, pooling_parent=None)
        # k=3 map per level; the full-resolution one only serves the decoder
        neighbours = [None if self.enc_mode else NeighbourMap.submanifold(level.grid_coord, level.batch, 3)]
        stem_map = NeighbourMap.submanifold(level.grid_coord, level.batch, kernel_size=5)
        if token_mask is None:
            feat = self.stem(point.feat, stem_map)
        else:
            if mask_token is None:
                raise ValueError("token_mask given without mask_token")
            mask = token_mask[:, None]
            feat = self.stem(point.feat.masked_fill(mask, 0.0), stem_map)
            feat = torch.where(mask, mask_token.reshape(1, -1).to(feat.dtype), feat)
        stages = [replace(level, feat=feat)]
        down_maps: list[DownsampleMap] = []
        for s in range(self.num_stages):
            fine = stages[-1]
            maps = downsample_map(fine.grid_coord, fine.batch, stride=2)
            coarse_neighbours = NeighbourMap.submanifold(maps.coarse_grid_coord, maps.coarse_batch, kernel_size=3)
            feat = self.down[s](fine.feat, maps)
            for block in self.enc[s]:
                feat = block(feat, coarse_neighbours)
            stages.append(Point(
                coord=segment_mean(fine.coord, maps.parent, len(maps.coarse_batch)), feat=feat,
                grid_coord=maps.coarse_grid_coord, offset=batch_to_offset(maps.coarse_batch, fine.num_clouds),
                batch=maps.coarse_batch, grid_size=None if fine.grid_size is None else fine.grid_size * 2,
                pooling_inverse=maps.parent, pooling_parent=fine))
            down_maps.append(maps)
            neighbours.append(coarse_neighbours)
        if self.enc_mode:
            return BackboneOutput(stages=stages)

        feat = stages[-1].feat
        for s in range(self.num_stages - 1, -1, -1):
            feat = self.up[s](feat, down_maps[s])
            feat = torch.cat([feat, stages[s].feat], dim=1)
            for block in self.dec[s]:
                feat = block(feat, neighbours[s])
        return BackboneOutput(stages=stages, decoded=replace(stages[0], feat=feat))


def load_spunet_config(name_or_path: str | Path) -> dict[str, Any]:
    """Read a SPUNet config: a name ("paper", "mini", "smoke") from dos/models/configs or a YAML path."""
    from dos.models.configs import load_model_config

    return load_model_config("spunet", name_or_path)


def spunet_from_config(name_or_path: str | Path, in_channels: int | None = None, **overrides: Any) -> SPUNet:
    """Build SPUNet from a config; keyword overrides (e.g. channel_multiplier=2, enc_mode=False) win."""
    config = load_spunet_config(name_or_path)
    if in_channels is not None:
        config["in_channels"] = in_channels
    config.update(overrides)
    return SPUNet(**config)
