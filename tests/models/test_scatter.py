import pytest
import torch

from dos.models.ops.scatter import segment_reduce


@pytest.mark.parametrize("reduce,fn", [("sum", lambda t: t.sum(0)), ("mean", lambda t: t.mean(0)),
                                       ("max", lambda t: t.max(0).values), ("min", lambda t: t.min(0).values)])
def test_segment_reduce_matches_loop(reduce, fn):
    torch.manual_seed(0)
    src = torch.randn(40, 3)
    index = torch.randint(0, 6, (40,))
    index[index == 4] = 5  # segment 4 stays empty
    out = segment_reduce(src, index, 7, reduce, backend="torch")
    for s in range(7):
        expected = fn(src[index == s]) if (index == s).any() else torch.zeros(3)
        torch.testing.assert_close(out[s], expected)


def test_max_gradient_flows_to_argmax():
    src = torch.tensor([[1.0], [3.0], [2.0]], requires_grad=True)
    segment_reduce(src, torch.tensor([0, 0, 0]), 1, "max", backend="torch").sum().backward()
    assert src.grad.flatten().tolist() == [0.0, 1.0, 0.0]
