"""Collapse diagnostics: the statistics measure what they claim, and a collapsed model is flagged."""

import math

import pytest
import torch

from dos.objectives.targets import TargetConfig
from dos.pretrain.diagnostics import (CollapseConfig, assignment_usage, balanced_usage, collapse_problems,
                                     effective_rank, prototype_usage, softmap_entropy)
from dos.pretrain.model import DistillConfig, DOSPretrainer
from tests.pretrain.test_pipeline import _batch
from tests.pretrain.toy_encoder import ToyEncoder


def test_effective_rank_counts_the_directions_the_embeddings_span():
    g = torch.Generator().manual_seed(0)
    line = torch.randn(200, 1, generator=g) * torch.randn(1, 16, generator=g)  # every row on one line
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    basis = torch.eye(16).repeat(10, 1)  # 16 orthogonal directions, equally used
    assert effective_rank(basis) == pytest.approx(16.0, rel=1e-4)
    spread = torch.nn.functional.normalize(torch.randn(500, 16, generator=g), dim=1)
    assert 12 < effective_rank(spread) < 16


def test_softmap_entropy_is_ln_n_for_constant_logits_and_small_for_peaked_ones():
    constant = torch.zeros(30, 5)
    entropy, fraction = softmap_entropy(constant, torch.tensor([10, 30]))
    assert entropy == pytest.approx((math.log(10) + math.log(20)) / 2, rel=1e-5)
    assert fraction == pytest.approx(1.0, rel=1e-5)
    peaked = torch.full((30, 5), -50.0)
    peaked[torch.arange(5), torch.arange(5)] = 50.0   # each prototype fires on one point of cloud 0
    peaked[10 + torch.arange(5), torch.arange(5)] = 50.0
    entropy, fraction = softmap_entropy(peaked, torch.tensor([10, 30]))
    assert entropy < 1e-3 and fraction < 1e-3


def test_collapse_thresholds_and_actions():
    config = CollapseConfig(min_usage_fraction=0.15, min_effective_rank=2.0)
    assert collapse_problems({"balanced_usage_fraction": 0.5, "effective_rank": 10.0}, config) == []
    assert collapse_problems({"balanced_usage_fraction": 0.5}, config) == []  # a row without the SVD
    # the raw-logit and own-plan usages are recorded for reference only: the guard reads the balanced plan
    assert collapse_problems({"balanced_usage_fraction": 0.5, "prototype_entropy": 0.0,
                              "assignment_entropy_fraction": 0.0}, config) == []
    problems = collapse_problems({"balanced_usage_fraction": 0.1, "balanced_usage_entropy": 0.7,
                                  "effective_rank": 1.0}, config)
    assert len(problems) == 2 and "min_usage_fraction" in problems[0] and "min_effective_rank" in problems[1]
    assert "(0.700 nats)" in problems[0]
    assert collapse_problems({"balanced_usage_fraction": 0.1}, CollapseConfig(on_collapse="off")) == []
    with pytest.raises(ValueError, match="on_collapse"):
        CollapseConfig(on_collapse="panic")
    with pytest.raises(ValueError, match="min_effective_rank"):
        CollapseConfig(min_effective_rank=-1.0)


def _clustered_logits(num_centres: int = 8, temp: float = 0.1):
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(num_centres, 16, generator=g), dim=1)
    embed = torch.nn.functional.normalize(
        centres.repeat_interleave(50, 0) + 0.1 * torch.randn(50 * num_centres, 16, generator=g), dim=1)
    return embed @ (centres / temp).t()


def test_plan_usage_ignores_per_prototype_offsets_that_a_softmap_cannot_see():
    """A softmap loss normalises each prototype over the points, so adding a constant to one prototype's logits
    changes nothing it trains on. The raw argmax then sends every point to that prototype; the Sinkhorn plans
    (converged) do not move, so the guard does not mistake it for collapse."""
    logits = _clustered_logits()
    clouds = torch.tensor([200, 400])
    shifted = logits.clone()
    shifted[:, 3] += 30.0
    target = TargetConfig("softmap", zipf_alpha=0.0, sinkhorn_iters=100)
    for usage in (lambda x: balanced_usage(x, target), lambda x: assignment_usage(x, target, clouds)):
        entropy, fraction = usage(logits)
        assert entropy == pytest.approx(math.log(8), rel=1e-3)          # 8 prototypes, equally used
        assert fraction == pytest.approx(1.0, rel=1e-3)
        assert usage(shifted)[0] == pytest.approx(float(entropy), rel=1e-3)
    assert prototype_usage(logits) == pytest.approx(math.log(8), rel=1e-3)
    assert prototype_usage(shifted) == pytest.approx(0.0, abs=1e-9)  # the raw argmax piles onto prototype 3
    # identical embeddings (every row of the plan the same): one prototype for everything, in every statistic
    for target in (TargetConfig("clustering", zipf_alpha=3.0), TargetConfig("softmap", zipf_alpha=1.3)):
        same = torch.linspace(-3, 3, 8).expand(400, 8)  # every row the same (prototypes told apart, points not)
        for entropy, fraction in (balanced_usage(same, target), assignment_usage(same, target, clouds)):
            assert entropy == pytest.approx(0.0, abs=1e-9) and fraction == pytest.approx(0.0, abs=1e-9)


def test_soft_rows_under_a_zipf_prior_send_the_own_plan_argmax_to_the_head_but_not_the_balanced_one():
    """Why the guard reads the balanced plan: with logits that tell the prototypes apart by less than the Zipf
    prior's ln(w_1 / w_k), the argmax of the run's own plan is the head prototype for most points although
    every point's logits still single out its own prototype."""
    soft = _clustered_logits(num_centres=8, temp=1.0)   # cosine / 1: rows differ by about 1 nat
    assert prototype_usage(soft) == pytest.approx(math.log(8), rel=1e-3)
    zipf = TargetConfig("softmap", zipf_alpha=1.3, sinkhorn_iters=3)
    own_entropy, own_fraction = assignment_usage(soft, zipf, None)
    entropy, fraction = balanced_usage(soft, zipf)
    assert own_fraction < 0.5 and own_entropy < 0.5 * math.log(8)
    assert entropy == pytest.approx(math.log(8), rel=1e-2) and fraction == pytest.approx(1.0, rel=1e-2)


def _pretrainer(seed: int) -> tuple[DOSPretrainer, object]:
    torch.manual_seed(seed)
    batch = _batch("observable")
    model = DOSPretrainer(ToyEncoder(batch.feat.shape[1]).train(),
                          DistillConfig(mode="observable", cross_view=True, cross_view_radius=0.4, head_hidden=32,
                                        head_dim=8, num_prototypes=16), TargetConfig("softmap"))
    return model, batch


def test_a_healthy_model_passes_and_a_collapsed_teacher_is_flagged():
    model, batch = _pretrainer(0)
    _, stats = model(batch, student_temp=0.1, teacher_temp=0.05, diagnostics=True)
    row = {k: float(v) for k, v in stats.items()}
    assert row["effective_rank"] > 2.0 and row["prototype_entropy"] > 1.0 and row["balanced_usage_entropy"] > 1.0
    assert 0 < row["balanced_usage_fraction"] <= 1.0 + 1e-6 and 0 < row["assignment_entropy_fraction"]
    assert 0 < row["softmap_entropy_fraction"] < 1
    assert collapse_problems(row, CollapseConfig()) == []
    _, plain = model(batch, student_temp=0.1, teacher_temp=0.05)
    assert "effective_rank" not in plain  # the SVD runs on logged steps only

    # A collapsed teacher: its head maps every unit to the same embedding.
    with torch.no_grad():
        last = model.teacher["head"].net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.linspace(-1, 1, last.bias.numel()))
    _, stats = model(batch, student_temp=0.1, teacher_temp=0.05, diagnostics=True)
    row = {k: float(v) for k, v in stats.items()}
    assert row["effective_rank"] == pytest.approx(1.0, abs=1e-3)
    assert row["prototype_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert row["assignment_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert row["balanced_usage_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert row["softmap_entropy_fraction"] == pytest.approx(1.0, abs=1e-5)
    assert len(collapse_problems(row, CollapseConfig())) == 2


def test_regression_records_no_prototype_usage_and_is_guarded_by_rank():
    """Regression trains no prototypes: an argmax over its random prototypes is not a usage statistic."""
    torch.manual_seed(0)
    batch = _batch("observable")
    model = DOSPretrainer(ToyEncoder(batch.feat.shape[1]).train(),
                          DistillConfig(mode="observable", cross_view=True, cross_view_radius=0.4, head_hidden=32,
                                        head_dim=8, num_prototypes=16), TargetConfig("regression"))
    _, stats = model(batch, student_temp=0.1, teacher_temp=0.05, diagnostics=True)
    assert "prototype_entropy" not in stats and "balanced_usage_entropy" not in stats and stats["effective_rank"] > 2.0
    with torch.no_grad():
        model.teacher["head"].net[-1].weight.zero_()
    _, stats = model(batch, student_temp=0.1, teacher_temp=0.05, diagnostics=True)
    problems = collapse_problems({k: float(v) for k, v in stats.items()}, CollapseConfig())
    assert len(problems) == 1 and "min_effective_rank" in problems[0]
