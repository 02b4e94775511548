"""A small test encoder honouring the pretraining encoder contract: a stem, a mask-token swap, one round of
mixing over the 3x3x3 voxel neighbourhood with a positional term from the voxel coordinates (so positions of
masked tokens do reach their neighbours, as in any sparse-conv / attention backbone), then mean pooling to
units of 4x4x4 voxels. Dense per-cloud adjacency: for small test clouds only."""

import torch
from torch import nn

from dos.pretrain.model import EncoderOutput


class ToyEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: int = 16):
        super().__init__()
        self.embed_channels = channels
        self.out_channels = channels
        self.stem = nn.Linear(in_channels, channels)
        self.position = nn.Linear(3, channels)
        self.mix = nn.Linear(channels, channels)

    def forward(self, coord, feat, grid_coord, offset, token_mask=None, mask_token=None):
        x = self.stem(feat)
        if token_mask is not None:
            x = torch.where(token_mask[:, None], mask_token.expand_as(x), x)
        x = x + self.position(grid_coord.float() * 0.1)
        outputs, units, unit_counts, base = [], [], [], 0
        start = 0
        for stop in offset.tolist():
            g = grid_coord[start:stop]
            adjacency = ((g[:, None, :] - g[None, :, :]).abs().amax(-1) <= 1).float()
            mixed = torch.relu(self.mix(adjacency @ x[start:stop] / adjacency.sum(1, keepdim=True)))
            cells, unit = torch.unique(torch.div(g, 4, rounding_mode="floor"), dim=0, return_inverse=True)
            pooled = torch.zeros(len(cells), mixed.shape[1]).index_add_(0, unit, mixed)
            outputs.append(pooled / torch.bincount(unit, minlength=len(cells))[:, None])
            units.append(unit + base)
            unit_counts.append(len(cells))
            base += len(cells)
            start = stop
        return EncoderOutput(unit_feat=torch.cat(outputs), point_to_unit=torch.cat(units),
                             unit_offset=torch.cumsum(torch.tensor(unit_counts), 0))
