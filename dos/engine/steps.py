"""Step-indexed batches: the batch of training step s is a function of (seed, s) alone.

Epoch e = s // steps_per_epoch draws a permutation of the dataset seeded by (seed, e); step s takes its
positions [p * B, (p + 1) * B) with p = s % steps_per_epoch (this rank's contiguous share of them), and each
sample's own randomness (crops, augmentation, masking) is seeded by (seed, e, dataset index). So a run resumed at
any step, with any number of loader workers, sees the batches an uninterrupted run sees.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from dos.engine.common import seed_from, to_device

PERMUTATION_SALT = 0x5EED  # separates the epoch permutations' seeds from the samples' (seed, epoch, index)


def batch_indices(seed: int, step: int, steps_per_epoch: int, batch_size: int, num_samples: int,
                  rank: int = 0, world: int = 1) -> list[int]:
    """Dataset indices of this rank's share of step `step`'s batch."""
    epoch, position = divmod(step, steps_per_epoch)
    perm = torch.randperm(num_samples, generator=torch.Generator().manual_seed(
        seed_from(seed, epoch, PERMUTATION_SALT)))
    chosen = perm[position * batch_size:(position + 1) * batch_size].tolist()
    share = batch_size // world
    return chosen[rank * share:(rank + 1) * share]


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's randomness at one epoch."""
    return torch.Generator().manual_seed(seed_from(seed, epoch, index))


class StepBatches(torch.utils.data.Dataset):
    """Item s = (s, collate([make_sample(dataset[i], generator of (seed, epoch, i)) for i in step s's share])).

    `make_sample` and `collate` must be picklable (module-level functions or functools.partial of them) when
    the loader has workers."""

    def __init__(self, dataset: Any, seed: int, batch_size: int, steps_per_epoch: int,
                 make_sample: Callable[[dict, torch.Generator], Any], collate: Callable[[list], Any],
                 rank: int = 0, world: int = 1):
        self.dataset, self.seed, self.batch_size, self.steps_per_epoch = dataset, seed, batch_size, steps_per_epoch
        self.make_sample, self.collate, self.rank, self.world = make_sample, collate, rank, world

    def __len__(self) -> int:
        return 1 << 62

    def indices(self, step: int) -> list[int]:
        return batch_indices(self.seed, step, self.steps_per_epoch, self.batch_size, len(self.dataset),
                             self.rank, self.world)

    def __getitem__(self, step: int) -> tuple[int, Any]:
        epoch = step // self.steps_per_epoch
        return step, self.collate([self.make_sample(self.dataset[i], sample_generator(self.seed, epoch, i))
                                   for i in self.indices(step)])


class StepLoader:
    """`loader(step)` -> step's batch on `device`, from a DataLoader over range(first step, total) with
    `num_workers` processes, created at the first call (so a resumed run starts at its resume step)."""

    def __init__(self, batches: StepBatches, total_steps: int, num_workers: int, device: torch.device):
        self.batches, self.total, self.num_workers, self.device = batches, total_steps, num_workers, device
        self._iterator = None

    def __call__(self, step: int) -> Any:
        if self._iterator is None:
            # its own generator: creating the iterator must not draw from the global RNG, whose state is part
            # of the checkpoint (an iterator created at the resume step would shift it)
            loader = torch.utils.data.DataLoader(self.batches, sampler=range(step, self.total), batch_size=None,
                                                 num_workers=self.num_workers,
                                                 generator=torch.Generator().manual_seed(self.batches.seed))
            self._iterator = iter(loader)
        got_step, batch = next(self._iterator)
        assert got_step == step, (got_step, step)
        return to_device(batch, self.device)
