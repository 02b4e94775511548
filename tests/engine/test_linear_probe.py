"""The converged linear probe (dos/engine/linear_probe.py): optimality, determinism, ignored points, records."""

import pytest
import torch

from dos.engine.linear_probe import fit_linear_probe


def _problem(points=600, channels=12, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (points,), generator=g)
    centres = torch.randn(classes, channels, generator=g)
    scale = torch.rand(channels, generator=g) * 5 + 0.1           # channels of very different scales
    shift = torch.randn(channels, generator=g) * 3
    features = (centres[labels] + torch.randn(points, channels, generator=g)) * scale + shift
    return features, labels


def _standardised_gradient(fit, features, labels, l2):
    """The gradient of the objective the probe minimises, evaluated at its (folded back) solution."""
    mean, std = features.mean(0), features.std(0, unbiased=False)
    w = (fit.weight * std).clone().requires_grad_(True)
    b = (fit.bias + fit.weight @ mean).clone().requires_grad_(True)
    x = (features - mean) / std
    loss = torch.nn.functional.cross_entropy(x @ w.t() + b, labels) + 0.5 * l2 * w.pow(2).sum()
    loss.backward()
    return max(float(w.grad.abs().max()), float(b.grad.abs().max())), float(loss)


def test_the_fit_reaches_the_optimum_and_says_so():
    features, labels = _problem()
    fit = fit_linear_probe(features, labels, 4, l2=1e-3, max_iter=500, tolerance=1e-5)
    assert fit.converged and fit.grad_max <= 1e-5 and fit.iterations < 500 and fit.points == 600
    grad, loss = _standardised_gradient(fit, features, labels, 1e-3)
    assert grad <= 2e-5 and loss == pytest.approx(fit.loss, rel=1e-5)   # optimal, and folded back correctly
    accuracy = ((features @ fit.weight.t() + fit.bias).argmax(1) == labels).float().mean()
    assert accuracy > 0.8
    assert fit.trace and fit.trace[-1]["grad_max"] == fit.grad_max
    assert "weight" not in fit.record() and fit.record()["converged"] is True


def test_the_fit_is_deterministic_and_ignores_unlabelled_points():
    features, labels = _problem()
    a = fit_linear_probe(features, labels, 4, l2=1e-3, max_iter=500, tolerance=1e-5)
    b = fit_linear_probe(features, labels, 4, l2=1e-3, max_iter=500, tolerance=1e-5)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    noise = torch.randn(50, features.shape[1]) * 100
    with_ignored = fit_linear_probe(torch.cat([features, noise]), torch.cat([labels, torch.full((50,), 255)]), 4,
                                    l2=1e-3, max_iter=500, tolerance=1e-5, ignore_index=255)
    assert torch.equal(with_ignored.weight, a.weight) and with_ignored.points == 600


def test_a_capped_fit_is_recorded_as_not_converged():
    features, labels = _problem()
    fit = fit_linear_probe(features, labels, 4, l2=1e-3, max_iter=2, tolerance=1e-9)
    assert not fit.converged and fit.iterations == 2 and fit.grad_max > 1e-9


def test_bad_labels_are_refused():
    features, labels = _problem()
    with pytest.raises(ValueError, match="outside"):
        fit_linear_probe(features, labels + 3, 4, l2=1e-3, max_iter=10, tolerance=1e-5)
    with pytest.raises(ValueError, match="no labelled"):
        fit_linear_probe(features, torch.full_like(labels, -1), 4, l2=1e-3, max_iter=10, tolerance=1e-5)
