import torch

from dos.batching import take_rows


def test_take_rows_is_advanced_indexing_for_any_index_shape_with_its_gradient():
    values = torch.randn(7, 3, 2, dtype=torch.float64, requires_grad=True)
    for index in (torch.tensor([6, 0, 0, 3]), torch.tensor([[1, 2, 2], [5, 0, 6]]), torch.zeros(0, dtype=torch.long)):
        got, want = take_rows(values, index), values[index]
        assert got.shape == want.shape and torch.equal(got, want)
        weights = torch.randn_like(want)
        (g_got,) = torch.autograd.grad((got * weights).sum(), values)
        (g_want,) = torch.autograd.grad((want * weights).sum(), values)
        assert torch.allclose(g_got, g_want, atol=1e-14)  # repeated rows accumulate
