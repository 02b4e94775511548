import pytest
import torch

from dos.models.ops.attention import build_patch_layout, patch_attention, select_attention_backend


def naive_patch_attention(qkv, counts, P, scale):
    """Per cloud: pad a cloud with n > P points to a multiple of P, position p repeating position p - P;
    attend inside each patch with softmax(q k^T * scale) v; drop the padded rows."""
    outputs, start = [], 0
    for n in counts:
        cloud = qkv[start:start + n]
        start += n
        if n > P:
            padded = list(range(n))
            while len(padded) % P:
                padded.append(padded[len(padded) - P])
            cloud = cloud[torch.tensor(padded)]
            patch = P
        else:
            patch = n
        result = []
        for s in range(0, len(cloud), patch):
            q, k, v = cloud[s:s + patch].unbind(1)  # [L, H, d] each
            attn = torch.einsum("qhd,khd->hqk", q, k) * scale
            result.append(torch.einsum("hqk,khd->qhd", attn.softmax(-1), v))
        outputs.append(torch.cat(result)[:n])
    return torch.cat(outputs)


@pytest.mark.parametrize("counts", [[50, 16, 7, 33], [7, 3], [64, 1], [40]])
def test_sdpa_matches_naive_reference(counts):
    P, H, d = 16, 2, 8
    torch.manual_seed(0)
    qkv = torch.randn(sum(counts), 3, H, d, dtype=torch.float64, requires_grad=True)
    layout = build_patch_layout(torch.tensor(counts), P)
    out = patch_attention(qkv, layout, backend="sdpa")
    ref = naive_patch_attention(qkv, counts, P, d ** -0.5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    (g,) = torch.autograd.grad(out, qkv, grad)
    (g_ref,) = torch.autograd.grad(ref, qkv, grad)
    torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)


def test_float32_matches_reference():
    counts, P = [50, 7], 16
    qkv = torch.randn(sum(counts), 3, 4, 16)
    out = patch_attention(qkv, build_patch_layout(torch.tensor(counts), P), backend="sdpa")
    torch.testing.assert_close(out, naive_patch_attention(qkv, counts, P, 0.25), atol=1e-5, rtol=1e-5)


def test_layout_padding_scheme():
    layout = build_patch_layout(torch.tensor([20, 5]), 8)
    # cloud 0: 20 points -> 24 slots, slots 20..23 repeat points 12..15; cloud 1: one patch of 5
    assert layout.pad_index.tolist() == list(range(20)) + [12, 13, 14, 15] + list(range(20, 25))
    assert layout.cu_seqlens.tolist() == [0, 8, 16, 24, 29]
    assert layout.max_seqlen == 8
    assert torch.equal(layout.pad_index[layout.unpad_index], torch.arange(25))


def test_backend_selection():
    qkv = torch.zeros(4, 3, 1, 2)
    assert select_attention_backend(qkv) == "sdpa"
    with pytest.raises(ValueError):
        select_attention_backend(qkv, "xformers")


def test_attention_in_row_order_folds_the_permutation_into_the_patch_gathers():
    """patch_attention(qkv, order=, inverse=) on rows in any order equals serializing first (qkv[order]),
    attending, and un-serializing ([inverse]), values and gradients."""
    counts, P = [300, 20, 128], 64
    n = sum(counts)
    qkv = torch.randn(n, 3, 2, 8, dtype=torch.float64, requires_grad=True)
    order = torch.cat([torch.randperm(c) + s for c, s in zip(counts, [0, 300, 320])])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n)
    layout = build_patch_layout(torch.tensor(counts), P)
    want = patch_attention(qkv[order], layout, backend="sdpa")[inverse]
    got = patch_attention(qkv, layout, backend="sdpa", order=order, inverse=inverse)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    weights = torch.randn_like(want)
    (g_want,) = torch.autograd.grad((want * weights).sum(), qkv)
    (g_got,) = torch.autograd.grad((got * weights).sum(), qkv)
    torch.testing.assert_close(g_got, g_want, atol=1e-12, rtol=1e-12)
