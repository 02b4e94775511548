"""The step loader: the batch of step s is a function of (seed, s) alone, whatever the workers or resume point."""

from functools import partial

import torch

from dos.engine.steps import StepBatches, StepLoader, batch_indices


def _sample(scale: float, sample: dict, generator: torch.Generator) -> torch.Tensor:
    return sample["x"] * scale + torch.rand(3, generator=generator)


def _stack(samples: list) -> torch.Tensor:
    return torch.stack(samples)


def _batches(seed: int = 3) -> StepBatches:
    dataset = [{"x": torch.full((3,), float(i))} for i in range(10)]
    return StepBatches(dataset, seed, batch_size=4, steps_per_epoch=2, make_sample=partial(_sample, 1.0),
                       collate=_stack)


def test_each_epoch_visits_a_permutation_and_ranks_split_the_batch():
    firsts = batch_indices(0, 0, 2, 4, 10) + batch_indices(0, 1, 2, 4, 10)
    assert len(set(firsts)) == 8  # two steps of one epoch: no sample twice
    assert batch_indices(0, 2, 2, 4, 10) != batch_indices(0, 0, 2, 4, 10)  # a new epoch, a new permutation
    halves = batch_indices(0, 1, 2, 4, 10, rank=0, world=2) + batch_indices(0, 1, 2, 4, 10, rank=1, world=2)
    assert halves == batch_indices(0, 1, 2, 4, 10)
    assert batch_indices(1, 0, 2, 4, 10) != batch_indices(0, 0, 2, 4, 10)


def test_the_loader_gives_the_same_batches_with_workers_and_after_a_resume():
    plain = StepLoader(_batches(), total_steps=6, num_workers=0, device=torch.device("cpu"))
    reference = [plain(s) for s in range(6)]
    with_workers = StepLoader(_batches(), total_steps=6, num_workers=2, device=torch.device("cpu"))
    assert all(torch.equal(with_workers(s), reference[s]) for s in range(6))
    resumed = StepLoader(_batches(), total_steps=6, num_workers=0, device=torch.device("cpu"))
    assert all(torch.equal(resumed(s), reference[s]) for s in range(3, 6))
    other_seed = StepLoader(_batches(seed=4), total_steps=6, num_workers=0, device=torch.device("cpu"))
    assert not torch.equal(other_seed(0), reference[0])
