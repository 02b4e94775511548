"""Step-indexed batches: the batch of training step s is a function of (seed, s) alone.

Epoch e = s // steps_per_epoch draws a permutation of the dataset seeded by (seed, e); step s takes its
positions [p * B, (p + 1) * B) with p = s % steps_per_epoch (this rank's contiguous share of them), and each
sample's own randomness (crops, augmentation, masking) is seeded by (seed, e, dataset index). So a run resumed at
any step, with any number of loader workers, sees the batches an uninterrupted run sees.

A joint training set (dos.data.mixture.SourceMixture: datasets of sizes n_k with weights w_k) keeps that
contract: its epoch's order (`epoch_order`) is sum(n_k) draws, source k's share proportional to w_k, each
source's draws taken from its own permutations seeded by (seed, epoch, k) and the draws interleaved by a
permutation seeded by (seed, epoch): still a function of (seed, epoch) alone.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from dos.engine.common import seed_from, to_device

PERMUTATION_SALT = 0x5EED  # separates the epoch permutations' seeds from the samples' (seed, epoch, index)


def source_shares(total: int, weights: Sequence[float]) -> list[int]:
    """`total` draws split in proportion to `weights` (largest remainder: the shares sum to `total`)."""
    exact = [total * w / sum(weights) for w in weights]
    shares = [int(math.floor(x)) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda k: (shares[k] - exact[k], k))
    for k in by_remainder[:total - sum(shares)]:
        shares[k] += 1
    return shares


def epoch_order(seed: int, epoch: int, sizes: Sequence[int], weights: Sequence[float] | None = None
                ) -> torch.Tensor:
    """The dataset indices of epoch `epoch`, in order. One dataset (one size): a permutation of it. Several
    (concatenated, of `sizes`): sum(sizes) draws, source k's share in proportion to weights[k] (default: its
    size), taken from successive permutations of source k (seeded by (seed, epoch, k)); the c-th pass over a
    source is offset by c x sum(sizes), so a scene drawn twice in an epoch gets two sample seeds (the mixture
    reads indices modulo its length)."""
    generator = torch.Generator().manual_seed(seed_from(seed, epoch, PERMUTATION_SALT))
    if len(sizes) == 1:
        return torch.randperm(int(sizes[0]), generator=generator)
    total = sum(sizes)
    shares = source_shares(total, list(sizes) if weights is None else list(weights))
    draws, start = [], 0
    for k, (size, share) in enumerate(zip(sizes, shares)):
        own = torch.Generator().manual_seed(seed_from(seed, epoch, PERMUTATION_SALT, k + 1))
        passes = [torch.randperm(size, generator=own) + start + c * total for c in range(-(-share // size))]
        draws.append(torch.cat(passes)[:share] if passes else torch.zeros(0, dtype=torch.int64))
        start += size
    return torch.cat(draws)[torch.randperm(total, generator=generator)]


def batch_indices(seed: int, step: int, steps_per_epoch: int, batch_size: int, num_samples: int | Sequence[int],
                  rank: int = 0, world: int = 1, weights: Sequence[float] | None = None) -> list[int]:
    """Dataset indices of this rank's share of step `step`'s batch; `num_samples`: the dataset's size, or the
    sizes of a mixture's sources (with their `weights`)."""
    epoch, position = divmod(step, steps_per_epoch)
    sizes = [num_samples] if isinstance(num_samples, int) else list(num_samples)
    perm = epoch_order(seed, epoch, sizes, weights)
    chosen = perm[position * batch_size:(position + 1) * batch_size].tolist()
    share = batch_size // world
    return chosen[rank * share:(rank + 1) * share]


def dataset_sizes(dataset: Any) -> list[int]:
    """[len] of one dataset; the sources' sizes of a mixture (dos.data.mixture.SourceMixture)."""
    return list(getattr(dataset, "sizes", [len(dataset)]))


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
        return batch_indices(self.seed, step, self.steps_per_epoch, self.batch_size, dataset_sizes(self.dataset),
                             self.rank, self.world, getattr(self.dataset, "weights", None))

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
