"""The step loader: the batch of step s is a function of (seed, s) alone, whatever the workers or resume point."""

import bisect
from functools import partial

import torch

from dos.engine.steps import StepBatches, StepLoader, batch_indices, epoch_order, source_shares


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


def test_a_joint_epoch_draws_each_source_by_its_weight_and_depends_on_seed_and_epoch_only():
    sizes, weights = [10, 2, 4], [1.0, 1.0, 2.0]
    order = epoch_order(0, 0, sizes, weights).tolist()
    assert len(order) == 16 and order == epoch_order(0, 0, sizes, weights).tolist()
    source = [bisect.bisect_right([0, 10, 12], i % 16) - 1 for i in order]
    assert [source.count(k) for k in range(3)] == source_shares(16, weights) == [4, 4, 8]
    # the small source is drawn twice over: each scene once per pass, and its second pass has other indices
    small = sorted(i for i, k in zip(order, source) if k == 1)
    assert small == [10, 11, 26, 27]
    assert len(set(order)) == 16
    assert epoch_order(0, 1, sizes, weights).tolist() != order and epoch_order(1, 0, sizes, weights).tolist() != order
    steps = [batch_indices(0, s, 4, 4, sizes, weights=weights) for s in range(4)]
    assert sum(steps, []) == order


def test_one_source_keeps_the_single_dataset_permutation():
    assert epoch_order(5, 2, [10]).tolist() == batch_indices(5, 4, 2, 10, 10)
    assert source_shares(7, [1.0, 1.0]) == [4, 3] and sum(source_shares(5, [0.2, 0.3, 0.5])) == 5
