import pytest
import torch

from dos.engine.optim import clip_gradients


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_gradients_matches_torch_clip_grad_norm(max_norm):
    """The CPU path (norm of the concatenated gradients) scales the gradients and returns the norm as
    torch.nn.utils.clip_grad_norm_ does: clipped when above max_norm, unchanged below; parameters without a
    gradient are skipped."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (7,), (2, 2, 2), (1,)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, theirs):
        a.grad = torch.randn(a.shape, generator=generator)
        b.grad = a.grad.clone()
    ours[3].grad = theirs[3].grad = None
    got = clip_gradients(ours, max_norm)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(got, want)
    for a, b in zip(ours[:3], theirs[:3]):
        torch.testing.assert_close(a.grad, b.grad)
    assert (max_norm < float(want)) == (float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours[:3]])))
                                        < float(want) - 1e-4)
