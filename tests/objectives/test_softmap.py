import pytest
import torch

from dos.objectives import softmap, softmap_loss, zipf_sinkhorn
from dos.objectives.reference import softmap_loss_reference
from dos.objectives.targets import TargetConfig, distillation_loss


def _random(n, k, seed):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def test_softmap_normalises_over_points_per_prototype_per_cloud():
    x = _random(30, 5, 0)
    s = softmap(x, segments=torch.tensor([10, 30]))
    assert torch.allclose(s[:10].sum(0), torch.ones(5)) and torch.allclose(s[10:].sum(0), torch.ones(5))
    assert torch.allclose(s[10:], torch.softmax(x[10:], dim=0))


def test_loss_and_gradient_match_the_textbook_formula():
    x = _random(200, 16, 1).double().requires_grad_()
    t = softmap(_random(200, 16, 2)).double()
    loss = softmap_loss(x, t)
    (grad,) = torch.autograd.grad(loss, x)
    x_ref = x.detach().clone().requires_grad_()
    ref = softmap_loss_reference(x_ref, t)
    (grad_ref,) = torch.autograd.grad(ref, x_ref)
    assert torch.allclose(loss.double(), ref, atol=1e-6)
    assert torch.allclose(grad, grad_ref, atol=1e-9)
    small_t = softmap(_random(20, 4, 3)).double()
    small_x = _random(20, 4, 4).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: softmap_loss(z, small_t, torch.tensor([7, 20])), (small_x,))


def test_kl_is_non_negative_and_zero_iff_maps_are_equal():
    for seed in range(5):
        x, y = _random(100, 8, seed), _random(100, 8, seed + 100)
        assert softmap_loss(x, softmap(y)) > 0
        assert softmap_loss(x, softmap(x)).abs() < 1e-6
        # equal maps up to a per-prototype shift of the logits: still the same softmap, still zero
        assert softmap_loss(x + torch.randn(8), softmap(x)).abs() < 1e-6


def test_gradients_reach_only_the_student():
    student = _random(64, 8, 3).requires_grad_()
    teacher_logits = _random(64, 8, 4).requires_grad_()
    targets = zipf_sinkhorn(teacher_logits, 1.3)
    softmap_loss(student, targets).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher_logits.grad is None
    # also through a target that still carries a graph: softmap() output is detached by the loss
    teacher = _random(64, 8, 5).requires_grad_()
    student.grad = None
    softmap_loss(student, softmap(teacher)).backward()
    assert teacher.grad is None


def test_a_clouds_loss_does_not_change_when_another_cloud_joins_the_batch():
    a_s, a_t = _random(50, 12, 6), _random(50, 12, 7)
    b_s, b_t = _random(80, 12, 8) * 3, _random(80, 12, 9) * 3
    alone = softmap_loss(a_s, zipf_sinkhorn(a_t, 1.3))
    b_alone = softmap_loss(b_s, zipf_sinkhorn(b_t, 1.3))
    segments = torch.tensor([50, 130])
    both = softmap_loss(torch.cat([a_s, b_s]), zipf_sinkhorn(torch.cat([a_t, b_t]), 1.3, segments=segments),
                        segments=segments)
    assert torch.allclose(both, (alone + b_alone) / 2, atol=1e-6)  # the batch loss is the mean of cloud losses
    # the per-cloud gradient of cloud a is the same, scaled by 1/B
    xa = a_s.clone().requires_grad_()
    softmap_loss(xa, zipf_sinkhorn(a_t, 1.3)).backward()
    xab = torch.cat([a_s, b_s]).requires_grad_()
    softmap_loss(xab, zipf_sinkhorn(torch.cat([a_t, b_t]), 1.3, segments=segments), segments=segments).backward()
    assert torch.allclose(xab.grad[:50] * 2, xa.grad, atol=1e-7)


def test_bf16_student_logits_give_a_float32_loss_and_bf16_gradient():
    x = _random(40, 8, 10).bfloat16().requires_grad_()
    loss = softmap_loss(x, softmap(_random(40, 8, 11)))
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("config", [
    TargetConfig("softmap", sinkhorn=True, zipf_alpha=1.3),
    TargetConfig("softmap", sinkhorn=True, zipf_alpha=0.0),
    TargetConfig("softmap", sinkhorn=False),
    TargetConfig("clustering"),
    TargetConfig("regression"),
])
def test_every_target_is_minimised_when_student_equals_teacher_and_batches_are_independent(config):
    g = torch.Generator().manual_seed(12)
    protos = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
    teacher = torch.nn.functional.normalize(torch.randn(60, 8, generator=g), dim=1)
    student = torch.nn.functional.normalize(torch.randn(60, 8, generator=g), dim=1).requires_grad_()
    seg = torch.tensor([25, 60])
    loss = distillation_loss(config, student, teacher, protos, 0.1, 0.1, seg)
    loss.backward()
    assert torch.isfinite(loss) and student.grad.abs().sum() > 0
    same = distillation_loss(config, teacher.clone(), teacher, protos, 0.1, 0.1, seg)
    assert same < loss
    if config.target == "regression" or (config.target == "softmap" and not config.sinkhorn):
        assert same.abs() < 1e-5
    # logits the caller computed already (rows of a larger product) give the same loss
    from dos.objectives.targets import prototype_logits

    rows = torch.arange(60)
    wide = prototype_logits(config, torch.cat([student, student[:7]]), protos, 0.1)
    given = distillation_loss(config, student, teacher, protos, 0.1, 0.1, seg,
                              student_logits=None if wide is None else wide[rows],
                              teacher_logits=prototype_logits(config, teacher, protos, 0.1))
    assert torch.allclose(given, loss, atol=1e-6)
    if wide is not None:
        with pytest.raises(ValueError, match="do not match"):
            distillation_loss(config, student, teacher, protos, 0.1, 0.1, seg, student_logits=wide,
                              teacher_logits=wide)


def test_bad_target_names_are_rejected_with_the_key():
    with pytest.raises(ValueError, match="objective.target"):
        TargetConfig("contrastive")


def test_the_cpu_and_cuda_ways_of_per_cloud_operations_agree():
    """Per-cloud column maxima (CPU: a max per cloud; CUDA: one segment max) and per-cloud row operations
    (CPU: broadcast per cloud; CUDA: a gather) give the same values, for blocks that straddle clouds and for an
    empty cloud."""
    from dos.objectives.segments import segment_rows
    from dos.objectives.softmap import _cloud_column_max

    x = _random(50, 6, 7)
    clouds = segment_rows(50, torch.tensor([12, 12, 31, 50]), x.device)  # cloud 1 is empty
    got = _cloud_column_max(x, clouds)
    want = torch.segment_reduce(x, "max", lengths=clouds.counts, axis=0)
    assert torch.equal(got, want) and torch.isinf(got[1]).all()
    values = _random(4, 6, 8)
    for op in ("sub", "mul"):
        for start, stop in ((0, 50), (5, 40), (12, 13)):
            broadcast = clouds.apply_per_cloud_(x[start:stop].clone(), start, values, op, gather=False)
            gathered = clouds.apply_per_cloud_(x[start:stop].clone(), start, values, op, gather=True)
            expected = x[start:stop] - values[clouds.ids[start:stop]] if op == "sub" \
                else x[start:stop] * values[clouds.ids[start:stop]]
            assert torch.equal(broadcast, gathered) and torch.equal(broadcast, expected)
    with pytest.raises(ValueError, match="op must be"):
        clouds.apply_per_cloud_(x.clone(), 0, values, "add")
