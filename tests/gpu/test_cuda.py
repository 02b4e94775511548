"""CUDA paths against the CPU implementation: the same numbers on both devices.

These tests carry the `gpu` marker and are deselected by default (pyproject's addopts), because CI has no GPU.
Run them on a CUDA machine with `python -m pytest -m gpu tests/gpu`; every other test covers the CPU path of
the same code. Optional accelerators (flash-attn, spconv, torch-scatter) are checked when installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dos.models.ops import sparse_conv
from dos.models.ops.attention import build_patch_layout, flash_attn_available, patch_attention
from dos.models.ops.scatter import segment_max, segment_mean, segment_sum, torch_scatter_available
from dos.models.ops.sparse_conv import NeighbourMap, SubMConv3d
from dos.models.point import Point
from dos.models.ptv3 import ptv3_from_config
from dos.objectives import softmap_loss, zipf_sinkhorn
from dos.objectives.reference import zipf_sinkhorn_reference
from tests.models.helpers import random_batch, random_voxels

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _require_cuda():
    if not torch.cuda.is_available():
        raise RuntimeError("the gpu tests need a CUDA device (CI deselects them with -m 'not gpu')")
    # fp32 must mean fp32 on both devices: no TF32 in the comparisons
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _cosine_logits(n: int, k: int, tau: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=1)
    w = torch.nn.functional.normalize(torch.randn(k, 32, generator=g), dim=1)
    return x @ w.T / tau


@pytest.mark.parametrize("alpha", [0.0, 1.3, 3.0])
@pytest.mark.parametrize("tau", [0.1, 0.01])
def test_zipf_sinkhorn_on_cuda_matches_float64_algorithm_1(alpha, tau):
    logits = _cosine_logits(20_000, 512, tau, seed=int(alpha * 10))
    ref = zipf_sinkhorn_reference(logits.double(), alpha, 3)
    out = zipf_sinkhorn(logits.to(CUDA), alpha, 3)
    assert out.device.type == CUDA.type and out.dtype == torch.float32
    assert (out.double().cpu() - ref).abs().max().item() <= 1e-6


def test_zipf_sinkhorn_on_cuda_bf16_input_and_large_problem_stay_finite():
    logits = _cosine_logits(4000, 256, 0.01, seed=3)
    low = logits.to(CUDA, torch.bfloat16)
    ref = zipf_sinkhorn_reference(low.double().cpu(), 1.3, 3)
    assert (zipf_sinkhorn(low, 1.3).double().cpu() - ref).abs().max() <= 1e-6
    g = torch.Generator(device=CUDA).manual_seed(10)
    big = torch.empty(200_000, 4096, device=CUDA).uniform_(-1.0, 1.0, generator=g).div_(0.01)
    out = zipf_sinkhorn(big, 1.3)
    del big
    assert torch.isfinite(out).all()
    assert (out.sum(0, dtype=torch.float64) - 1).abs().max() < 1e-4


def test_softmap_loss_and_gradient_on_cuda_equal_cpu():
    student = _cosine_logits(30_000, 1024, 0.1, seed=5)
    targets = zipf_sinkhorn(_cosine_logits(30_000, 1024, 0.04, seed=6), 1.3)
    segments = torch.tensor([12_000, 30_000])
    cpu_x = student.clone().requires_grad_()
    cpu_loss = softmap_loss(cpu_x, targets, segments)
    cpu_loss.backward()
    gpu_x = student.to(CUDA).requires_grad_()
    gpu_loss = softmap_loss(gpu_x, targets.to(CUDA), segments.to(CUDA))
    gpu_loss.backward()
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gpu_x.grad.cpu(), cpu_x.grad, rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_scatter_reductions_on_cuda_equal_cpu(backend):
    if backend == "auto" and not torch_scatter_available():
        backend = "torch"  # auto falls back to scatter_reduce: still compared below
    g = torch.Generator().manual_seed(0)
    src, index = torch.randn(50_000, 16, generator=g), torch.randint(0, 700, (50_000,), generator=g)
    for fn in (segment_sum, segment_mean, segment_max):
        ref = fn(src, index, 700, backend="torch")
        out = fn(src.to(CUDA), index.to(CUDA), 700, backend=backend)
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)


def test_submanifold_conv_on_cuda_equals_cpu_forward_and_backward():
    g = torch.Generator().manual_seed(1)
    grid = torch.cat([random_voxels(3000, (40, 40, 12), g), random_voxels(2000, (30, 30, 10), g)])
    batch = torch.cat([torch.zeros(3000, dtype=torch.long), torch.ones(2000, dtype=torch.long)])
    torch.manual_seed(0)
    conv = SubMConv3d(16, 32, 3, backend="torch")
    x = torch.randn(len(grid), 16, requires_grad=True)
    ref = conv(x, NeighbourMap.submanifold(grid, batch, 3))
    gx_ref, gw_ref = torch.autograd.grad(ref.square().sum(), (x, conv.weight))
    conv_gpu = conv.to(CUDA)
    xg = x.detach().to(CUDA).requires_grad_()
    out = conv_gpu(xg, NeighbourMap.submanifold(grid.to(CUDA), batch.to(CUDA), 3))
    gx, gw = torch.autograd.grad(out.square().sum(), (xg, conv_gpu.weight))
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx.cpu(), gx_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gw.cpu(), gw_ref, rtol=1e-4, atol=1e-3)
    if sparse_conv.spconv_available():  # the optional accelerator, when installed, gives the same numbers
        conv_gpu.backend = "spconv"
        out_sp = conv_gpu(xg, NeighbourMap.submanifold(grid.to(CUDA), batch.to(CUDA), 3))
        torch.testing.assert_close(out_sp.cpu(), ref, rtol=1e-4, atol=1e-4)


def _naive_patch_attention(qkv: torch.Tensor, counts: list[int], P: int) -> torch.Tensor:
    """Per patch softmax(q k^T / sqrt(d)) v in float64 on the CPU, with Pointcept's padding scheme."""
    q, k, v = qkv.double().unbind(1)
    out, start = [], 0
    for n in counts:
        idx = torch.arange(start, start + n)
        if n > P:
            padded = (n + P - 1) // P * P
            slots = torch.arange(padded)
            idx = start + torch.where(slots < n, slots, slots - P)
        res = torch.empty(n, q.shape[1], q.shape[2], dtype=torch.float64)
        for p0 in range(0, len(idx), max(P, 1)):
            sel = idx[p0:p0 + P]
            att = torch.einsum("ihd,jhd->hij", q[sel], k[sel]) * q.shape[-1] ** -0.5
            o = torch.einsum("hij,jhd->ihd", att.softmax(-1), v[sel])
            keep = (p0 + torch.arange(len(sel))) < n
            res[(p0 + torch.arange(len(sel)))[keep]] = o[keep]
        out.append(res)
        start += n
    return torch.cat(out)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_patch_attention_on_cuda_matches_float64_reference(dtype, tol):
    counts, P = [1000, 300, 40], 128  # long clouds (padded), and a short one (masked keys)
    qkv = torch.randn(sum(counts), 3, 4, 32, generator=torch.Generator().manual_seed(2))
    ref = _naive_patch_attention(qkv, counts, P)
    layout = build_patch_layout(torch.tensor(counts, device=CUDA), P)
    out = patch_attention(qkv.to(CUDA, dtype), layout, backend="sdpa")
    assert (out.double().cpu() - ref).abs().max().item() <= tol
    if dtype == torch.bfloat16:
        # the full patches of bf16 SDPA must run on a FlashAttention kernel (no mask, no padding), not cuDNN's
        from torch.profiler import ProfilerActivity, profile

        full = build_patch_layout(torch.tensor([1024, 512], device=CUDA), P)
        qkv_full = torch.randn(1536, 3, 4, 32, device=CUDA, dtype=dtype)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            patch_attention(qkv_full, full, backend="sdpa")
            torch.cuda.synchronize()
        names = [event.key.lower() for event in prof.key_averages()]
        assert any("flash" in name for name in names), names
        assert not any("cudnn" in name for name in names), names
    if flash_attn_available():
        flash = patch_attention(qkv.to(CUDA, torch.bfloat16), layout, backend="flash")
        assert (flash.double().cpu() - ref).abs().max().item() <= 3e-2


def _model_and_batch(config: str, enc_mode: bool, counts: list[int]):
    torch.manual_seed(0)
    model = ptv3_from_config(config, in_channels=6, enc_mode=enc_mode, shuffle_orders=False).eval()
    point = random_batch(counts, [(60, 60, 20)] * len(counts), seed=4)
    return model, point


def _to(point: Point, device: torch.device) -> Point:
    return Point.from_coords(point.coord.to(device), point.feat.to(device), point.offset.to(device),
                             point.grid_size, grid_coord=point.grid_coord.to(device))


@pytest.mark.parametrize("config,enc_mode", [("mini", True), ("mini", False), ("paper", True)])
def test_ptv3_on_cuda_fp32_equals_cpu(config, enc_mode):
    model, point = _model_and_batch(config, enc_mode, [6000, 3500])
    with torch.no_grad():
        ref = model(point)
        out = model.to(CUDA)(_to(point, CUDA))
    ref_feat = ref.decoded.feat if not enc_mode else ref.stages[-1].feat
    out_feat = out.decoded.feat if not enc_mode else out.stages[-1].feat
    rel = (out_feat.cpu() - ref_feat).abs().max() / ref_feat.abs().max()
    assert rel.item() <= 1e-4, f"max relative difference {rel.item():.2e}"


def test_ptv3_bf16_autocast_training_step_close_to_fp32_and_finite():
    model, point = _model_and_batch("mini", True, [6000, 3500])
    model = model.to(CUDA).train()
    batch = _to(point, CUDA)
    with torch.no_grad():
        model.eval()
        fp32 = model(batch).stages[-1].feat
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(batch).stages[-1].feat.float()
    cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=1)
    assert cos.min().item() > 0.98, f"lowest per-voxel cosine similarity bf16 vs fp32: {cos.min().item():.4f}"
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(batch).stages[-1].feat.float().square().mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_pretrain_command_runs_on_cuda_in_bf16(smoke_data, tmp_path):
    from tests.engine.conftest import run_dos, tiny_pretrain_overrides

    out = tmp_path / "run"
    run_dos("pretrain", "dos/config/pretrain/dos_outdoor.yaml", "--out", str(out),
            overrides=tiny_pretrain_overrides(smoke_data, steps=4, **{"train.bf16": "true"}))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == CUDA.type, summary["device"]
    history = (out / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    losses = [float(line.split(",")[header.index("loss")]) for line in history[1:]]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert (out / "encoder.pt").is_file()


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory) -> Path:
    from dos.data.synthetic.benchmark import generate_benchmark

    out = tmp_path_factory.mktemp("synthetic")
    generate_benchmark(out, "smoke", 0)
    return out

