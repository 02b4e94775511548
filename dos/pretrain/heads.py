"""Projection head and prototypes.

The head maps up-cast encoder features to L2-normalised embeddings (Sonata: Linear(1088 -> 4096), GELU,
Linear(-> 256)). Prototypes are K learnable vectors kept at unit norm (weight normalisation with the gain fixed
at 1), so embedding @ prototypes.T is a matrix of cosines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int = 4096, out_channels: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.GELU(),
                                 nn.Linear(hidden_channels, out_channels))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


class Prototypes(nn.Module):
    def __init__(self, num_prototypes: int = 1024, dim: int = 256):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_prototypes, dim) * 0.02)

    def unit_vectors(self) -> torch.Tensor:
        return F.normalize(self.weight, dim=-1)

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        """Cosine similarity [N, K] of unit embeddings to every prototype."""
        return embed @ self.unit_vectors().t()
