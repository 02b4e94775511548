import math

import numpy as np
import pytest
import torch

from dos.objectives import sinkhorn_point_assignments, zipf_prior, zipf_sinkhorn
from dos.objectives.reference import zipf_sinkhorn_reference


def _cosine_logits(n, k, tau, seed=0, dim=16):
    g = torch.Generator().manual_seed(seed)
    points = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=1)
    return points @ protos.t() / tau


def test_zipf_prior_is_a_normalised_power_law():
    w = zipf_prior(10, 1.3)
    assert w.dtype == torch.float32 and torch.isclose(w.sum(), torch.tensor(1.0))
    ranks = torch.arange(1, 11, dtype=torch.float64)
    assert torch.allclose(w.double() / w[0].double(), ranks ** -1.3, rtol=1e-6)
    assert torch.allclose(zipf_prior(7, 0.0), torch.full((7,), 1 / 7))
    with pytest.raises(ValueError):
        zipf_prior(4, -1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.3, 3.0])
@pytest.mark.parametrize("tau", [0.1, 0.04, 0.01])
@pytest.mark.parametrize("num_iters", [1, 3, 10])
def test_matches_float64_transcription_of_algorithm_1(alpha, tau, num_iters):
    logits = _cosine_logits(2000, 128, tau, seed=int(alpha * 10 + num_iters))
    ref = zipf_sinkhorn_reference(logits.double(), alpha, num_iters)
    out = zipf_sinkhorn(logits, alpha, num_iters)
    assert out.dtype == torch.float32
    # columns have unit mass, so the absolute error is already relative to the column mass
    assert (out.double() - ref).abs().max().item() <= 1e-6


def test_marginals_approach_targets_as_iterations_grow():
    logits = _cosine_logits(1500, 64, 0.05, seed=3)
    w = zipf_prior(64, 1.3).double()
    row_err, col_err = [], []
    for iters in [1, 3, 10, 50]:
        f = zipf_sinkhorn_reference(logits.double(), 1.3, iters)  # columns sum to 1: undo to get the plan
        ours = zipf_sinkhorn(logits, 1.3, iters).double()
        plan = ours * w  # column k of the transport plan carries mass w_k
        row_err.append((plan.sum(1) * plan.shape[0] - 1).abs().max().item())  # rows should all carry 1/N
        col_err.append((plan.sum(0) - w).abs().max().item())
        assert (ours - f).abs().max() < 1e-6
    assert row_err[-1] < 1e-3 and row_err[-1] < row_err[0] / 10
    assert all(b <= a + 1e-9 for a, b in zip(row_err, row_err[1:]))
    assert max(col_err) < 1e-6


def test_alpha_zero_gives_uniform_column_mass():
    logits = _cosine_logits(1000, 50, 0.05, seed=4)
    out = zipf_sinkhorn(logits, 0.0, num_iters=200).double()
    # the transport plan before the final column normalisation has uniform column mass: recover it from rows
    # (rows of the plan sum to 1/N), i.e. each row of out, weighted by 1/K, sums to the same value
    row_mass = (out / 50).sum(1)
    assert torch.allclose(row_mass, torch.full_like(row_mass, 1 / 1000), rtol=1e-3)


def test_invariant_to_adding_a_constant_to_the_logits():
    logits = _cosine_logits(800, 32, 0.02, seed=5)
    base = zipf_sinkhorn(logits, 1.3)
    assert torch.allclose(zipf_sinkhorn(logits + 37.5, 1.3), base, atol=1e-6)
    assert torch.allclose(zipf_sinkhorn(logits - 80.0, 1.3), base, atol=1e-6)


def test_columns_sum_to_one_within_each_cloud_and_clouds_are_independent():
    a, b = _cosine_logits(300, 40, 0.05, seed=6), _cosine_logits(500, 40, 0.05, seed=7)
    batched = zipf_sinkhorn(torch.cat([a, b]), 1.3, segments=torch.tensor([300, 800]))
    assert torch.allclose(batched[:300].sum(0), torch.ones(40), atol=1e-5)
    assert torch.allclose(batched[300:].sum(0), torch.ones(40), atol=1e-5)
    assert torch.allclose(batched[:300], zipf_sinkhorn(a, 1.3), atol=1e-7)
    assert torch.allclose(batched[300:], zipf_sinkhorn(b, 1.3), atol=1e-7)
    batch_ids = torch.cat([torch.zeros(300, dtype=torch.long), torch.ones(500, dtype=torch.long)])
    assert torch.equal(zipf_sinkhorn(torch.cat([a, b]), 1.3, segments=batch_ids), batched)


def test_dead_prototype_columns_keep_their_exact_value():
    # prototype 0 is 180 logits below every point's best prototype: exp underflows in fp32 on the naive path
    logits = _cosine_logits(400, 16, 0.01, seed=8)
    logits[:, 0] = -100.0 + torch.linspace(0, 1, 400)
    logits[:5, 1:] = 100.0
    ref = zipf_sinkhorn_reference(logits.double(), 1.3)
    naive_fp32 = zipf_sinkhorn_reference(logits.float(), 1.3)
    assert not torch.isfinite(naive_fp32).all()  # the textbook fp32 version breaks here
    out = zipf_sinkhorn(logits, 1.3)
    assert torch.isfinite(out).all()
    assert (out.double() - ref).abs().max() <= 1e-6


def test_low_precision_input_is_computed_in_fp32():
    logits = _cosine_logits(600, 32, 0.01, seed=9)
    for dtype in (torch.bfloat16, torch.float16):
        low = logits.to(dtype)
        out = zipf_sinkhorn(low, 1.3)
        assert out.dtype == torch.float32
        ref = zipf_sinkhorn_reference(low.double(), 1.3)
        assert (out.double() - ref).abs().max() <= 1e-6


def test_no_nan_or_inf_at_200k_points_4096_prototypes_tau_001():
    g = torch.Generator().manual_seed(10)
    n, k = 200_000, 4096
    logits = torch.empty(n, k).uniform_(-1.0, 1.0, generator=g).div_(0.01)  # |cos| <= 1, tau = 0.01
    out = zipf_sinkhorn(logits, 1.3)
    del logits
    assert torch.isfinite(out).all()
    col = out.sum(0, dtype=torch.float64)
    assert (col - 1).abs().max() < 1e-4


def test_result_is_detached_and_rejects_bad_input():
    logits = _cosine_logits(50, 8, 0.1).requires_grad_()
    assert not zipf_sinkhorn(logits, 1.0).requires_grad
    bad = logits.detach().clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="row 3"):
        zipf_sinkhorn(bad, 1.0)
    with pytest.raises(ValueError):
        zipf_sinkhorn(logits.detach(), 1.0, segments=torch.tensor([10, 20]))


def test_point_assignments_sum_to_one_per_point_and_match_pot():
    ot = pytest.importorskip("ot")  # POT: an independent Sinkhorn implementation
    logits = _cosine_logits(300, 20, 0.1, seed=11)
    q = sinkhorn_point_assignments(logits, num_iters=500)
    assert torch.allclose(q.sum(1), torch.ones(300), atol=1e-5)
    plan = ot.sinkhorn(np.full(300, 1 / 300), np.full(20, 1 / 20), -logits.double().numpy(), reg=1.0,
                       numItermax=5000, stopThr=1e-12)
    expected = torch.from_numpy(plan / plan.sum(1, keepdims=True))
    assert torch.allclose(q.double(), expected, atol=1e-4)
    # the same plan normalised over points is the softmap target
    softmap_target = zipf_sinkhorn(logits, 0.0, num_iters=500).double()
    assert torch.allclose(softmap_target, torch.from_numpy(plan / plan.sum(0, keepdims=True)), atol=1e-4)
