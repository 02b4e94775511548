"""What the student sees, per distillation mode (Table 5, "Masked self-distillation").

- observable (DOS): masked points are removed from the student's input; supervision at the visible points.
- naive: every point stays in the input; after the stem, masked points' features become a learnable mask
  token; supervision at the masked tokens. Their voxel positions still reach the network (positional leakage).
- token_jitter: naive, plus Gaussian jitter (sigma 0.01 m) of the masked tokens' coordinates (Sonata's
  mitigation), which moves some of them to neighbouring voxels.
The teacher always sees the whole view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dos.batching import offset_to_batch
from dos.data.transforms import linear_keys

MODES = ("observable", "naive", "token_jitter")


@dataclass
class StudentInput:
    coord: torch.Tensor          # [Ns, 3]
    feat: torch.Tensor           # [Ns, C]
    grid_coord: torch.Tensor     # [Ns, 3] on the view's grid (same origin as the teacher's)
    offset: torch.Tensor         # [B]
    index: torch.Tensor          # [Ns] row of each student point in the full view
    token_mask: torch.Tensor | None  # [Ns] True where the mask token replaces the features (naive modes)
    supervised: torch.Tensor     # [Ns] True where the student is supervised


def build_student_input(coord: torch.Tensor, feat: torch.Tensor, grid_coord: torch.Tensor, offset: torch.Tensor,
                        masked: torch.Tensor, mode: str, grid_size: float, generator: torch.Generator,
                        jitter_sigma: float = 0.01) -> StudentInput:
    if mode not in MODES:
        raise ValueError(f"masking.mode must be one of {MODES}, got {mode!r}")
    batch = offset_to_batch(offset)
    if mode == "observable":
        index = (~masked).nonzero().squeeze(1)
        kept_counts = torch.bincount(batch[index], minlength=len(offset))
        return StudentInput(coord=coord[index], feat=feat[index], grid_coord=grid_coord[index],
                            offset=torch.cumsum(kept_counts, 0), index=index, token_mask=None,
                            supervised=torch.ones(len(index), dtype=torch.bool))
    index = torch.arange(coord.shape[0])
    student_coord, student_grid = coord, grid_coord
    if mode == "token_jitter":
        student_coord, student_grid = jitter_masked_tokens(coord, grid_coord, batch, masked, jitter_sigma,
                                                           grid_size, generator)
    return StudentInput(coord=student_coord, feat=feat, grid_coord=student_grid, offset=offset, index=index,
                        token_mask=masked.clone(), supervised=masked.clone())


def jitter_masked_tokens(coord: torch.Tensor, grid_coord: torch.Tensor, batch: torch.Tensor, masked: torch.Tensor,
                         sigma: float, grid_size: float, generator: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian jitter of masked points' coordinates; each one's voxel moves by the same number of cells as its
    coordinate crossed, unless the target voxel is occupied (by any point, or by an earlier jittered one): then it
    keeps its voxel. Voxels therefore stay unique, as the sparse convolutions require."""
    moved = masked.nonzero().squeeze(1)
    new_coord = coord.clone()
    new_coord[moved] += torch.randn((len(moved), 3), generator=generator, dtype=coord.dtype) * sigma
    cell_shift = torch.floor(new_coord[moved] / grid_size).long() - torch.floor(coord[moved] / grid_size).long()
    new_grid = grid_coord.clone()
    new_grid[moved] = (grid_coord[moved] + cell_shift).clamp_min(0)
    keyed = torch.cat([batch[:, None], new_grid], dim=1)
    original = torch.cat([batch[:, None], grid_coord], dim=1)
    keys = linear_keys(torch.cat([original, keyed[moved]]))
    original_keys, moved_keys = keys[: len(batch)], keys[len(batch):]
    changed = (new_grid[moved] != grid_coord[moved]).any(1)
    collides_with_original = torch.isin(moved_keys, original_keys)
    # among moved points landing in the same new voxel, only the first keeps it
    _, first_of_key = torch.unique(moved_keys, return_inverse=True)
    first = torch.full((int(first_of_key.max()) + 1 if len(first_of_key) else 0,), len(moved_keys), dtype=torch.long)
    first.scatter_reduce_(0, first_of_key, torch.arange(len(moved_keys)), reduce="amin")
    not_first = first[first_of_key] != torch.arange(len(moved_keys))
    revert = changed & (collides_with_original | not_first)
    new_grid[moved[revert]] = grid_coord[moved[revert]]
    return new_coord, new_grid
