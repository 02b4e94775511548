import subprocess
import sys

import pytest
import torch

from dos.models import Point, PointTransformerV3, ptv3_from_config, upcast
from dos.models.ptv3 import load_ptv3_config
from dos.models.serialization import ORDER_NAMES
from tests.models.helpers import random_batch


def smoke_model(**overrides):
    torch.manual_seed(0)
    return ptv3_from_config("smoke", in_channels=6, **overrides)


def permuted(point: Point, perm: torch.Tensor) -> Point:
    """The same batch with the points of each cloud listed in another order (perm keeps clouds in place)."""
    return Point(coord=point.coord[perm], feat=point.feat[perm], grid_coord=point.grid_coord[perm],
                 offset=point.offset, grid_size=point.grid_size)


def test_permuting_points_permutes_outputs():
    model = smoke_model(enc_mode=False).eval()
    point = random_batch([120, 90], [(10, 10, 6), (9, 9, 5)])
    perm = torch.cat([torch.randperm(120), 120 + torch.randperm(90)])
    out = model(point, generator=torch.Generator().manual_seed(3))
    out_perm = model(permuted(point, perm), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out_perm.decoded.feat, out.decoded.feat[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_perm.stages[0].feat, out.stages[0].feat[perm], atol=1e-5, rtol=1e-5)
    for s in range(1, 3):  # pooled voxels come out in (batch, x, y, z) order whatever the input order
        torch.testing.assert_close(out_perm.stages[s].feat, out.stages[s].feat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upcast(out_perm.stages, 0), upcast(out.stages, 0)[perm], atol=1e-5, rtol=1e-5)


def test_cloud_output_independent_of_batch_mates():
    model = smoke_model(enc_mode=False, shuffle_orders=False).eval()
    both = random_batch([150, 60], [(12, 12, 6), (7, 7, 4)])  # the second cloud is inside the first's extent
    alone = Point(coord=both.coord[:150], feat=both.feat[:150], grid_coord=both.grid_coord[:150],
                  offset=torch.tensor([150]), grid_size=both.grid_size)
    out_both, out_alone = model(both), model(alone)
    torch.testing.assert_close(out_both.decoded.feat[:150], out_alone.decoded.feat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upcast(out_both.stages, 0)[:150], upcast(out_alone.stages, 0), atol=1e-5, rtol=1e-5)


def test_gradients_finite_everywhere_and_upcast_shapes():
    model = smoke_model(enc_mode=True).train()
    point = random_batch([200, 80], [(12, 12, 6), (8, 8, 4)])
    point.feat.requires_grad_(True)
    out = model(point)
    assert [s.feat.shape[1] for s in out.stages] == [8, 16, 24]
    assert out.stages[0].num_points == 280
    for target in range(3):
        feat = upcast(out.stages, target)
        assert feat.shape == (out.stages[target].num_points, sum([8, 16, 24][target:]))
    upcast(out.stages, 0).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert torch.isfinite(point.feat.grad).all()
    # upcast concatenates the target stage first, then the coarser ones mapped through pooling_inverse
    feat = upcast(out.stages, 1)
    torch.testing.assert_close(feat[:, :16], out.stages[1].feat)
    torch.testing.assert_close(feat[:, 16:], out.stages[2].feat[out.stages[2].pooling_inverse])


def test_pooling_maps():
    model = smoke_model().eval()
    point = random_batch([100, 50], [(10, 10, 6), (8, 8, 4)])
    stages = model(point).stages
    for s in (1, 2):
        fine, coarse = stages[s - 1], stages[s]
        assert coarse.pooling_parent is fine
        assert torch.equal(coarse.grid_coord[coarse.pooling_inverse], fine.grid_coord // 2)
        assert torch.equal(coarse.batch[coarse.pooling_inverse], fine.batch)
        counts = torch.bincount(coarse.pooling_inverse, minlength=coarse.num_points)[:, None]
        mean = torch.zeros_like(coarse.coord).index_add_(0, coarse.pooling_inverse, fine.coord) / counts
        torch.testing.assert_close(coarse.coord, mean)
        assert coarse.grid_size == pytest.approx(fine.grid_size * 2)


def test_order_shuffling_is_seeded_and_only_in_training():
    model = smoke_model(drop_path=0.0).train()
    point = random_batch([100], [(10, 10, 6)])
    a = model(point, generator=torch.Generator().manual_seed(1)).stages[0]
    b = model(point, generator=torch.Generator().manual_seed(1)).stages[0]
    assert a.order_names == b.order_names and torch.equal(a.feat, b.feat)
    names = {model(point, generator=torch.Generator().manual_seed(s)).stages[0].order_names for s in range(8)}
    assert len(names) > 1
    fixed = smoke_model(shuffle_orders=False).eval()
    assert fixed(point).stages[0].order_names == ORDER_NAMES
    model.eval()  # inference is deterministic whatever the RNG
    assert {model(point, generator=torch.Generator().manual_seed(s)).stages[0].order_names
            for s in range(4)} == {ORDER_NAMES}


def test_token_mask_replaces_stem_features():
    model = smoke_model(shuffle_orders=False).eval()
    point = random_batch([100], [(10, 10, 6)])
    token = torch.randn(8)
    none_masked = model(point, token_mask=torch.zeros(100, dtype=torch.bool), mask_token=token)
    plain = model(point)
    torch.testing.assert_close(none_masked.stages[-1].feat, plain.stages[-1].feat)
    mask = torch.arange(100) % 3 == 0
    masked = model(point, token_mask=mask, mask_token=token)
    # masked points' own input features no longer matter
    other = Point(coord=point.coord, feat=torch.where(mask[:, None], torch.randn_like(point.feat), point.feat),
                  grid_coord=point.grid_coord, offset=point.offset)
    torch.testing.assert_close(model(other, token_mask=mask, mask_token=token).stages[0].feat, masked.stages[0].feat)
    assert not torch.allclose(masked.stages[0].feat, plain.stages[0].feat)
    with pytest.raises(ValueError):
        model(point, token_mask=mask)


def test_configs():
    paper = load_ptv3_config("paper")
    assert paper["enc_depths"] == (3, 3, 3, 12, 3) and paper["enc_channels"] == (48, 96, 192, 384, 512)
    assert paper["enc_num_heads"] == (3, 6, 12, 24, 32) and paper["enc_patch_size"] == (1024,) * 5
    assert paper["dec_depths"] == (2, 2, 2, 2) and paper["dec_channels"] == (64, 96, 192, 384)
    assert paper["dec_num_heads"] == (4, 6, 12, 24) and paper["drop_path"] == 0.3
    assert sum(paper["enc_channels"][2:]) == 1088  # Sonata's up-cast head input
    mini = ptv3_from_config("mini", in_channels=4, enc_mode=False)
    assert isinstance(mini, PointTransformerV3) and mini.out_channels == 16
    assert mini.embedding[0].in_features == 4


def test_import_dos_needs_no_optional_extensions():
    code = ("import sys, dos, dos.models, dos.models.ptv3; "
            "bad = [m for m in ('spconv', 'torch_scatter', 'flash_attn', 'yaml') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_pass_over_a_voxel_subset_reuses_the_reference_pass_and_gives_the_same_output():
    """The student's pass over a subset of the teacher's voxels, given the teacher's output as reference, reads
    its neighbour maps and poolings from it and computes exactly what a pass without reference computes; with
    rows None (the same voxels, as the naive mode) it shares the reference's maps."""
    model = smoke_model(drop_path=0.0).train()
    point = random_batch([160, 90], [(12, 12, 6), (9, 9, 5)])
    with torch.no_grad():
        reference = model.eval()(point)
    model.train()
    rows = torch.randperm(point.num_points, generator=torch.Generator().manual_seed(2))[:180].sort().values
    kept = torch.bincount(point.batch[rows], minlength=2)
    subset = Point(coord=point.coord[rows], feat=point.feat[rows], grid_coord=point.grid_coord[rows],
                   offset=torch.cumsum(kept, 0), grid_size=point.grid_size)
    plain = model(subset, generator=torch.Generator().manual_seed(5))
    reused = model(subset, generator=torch.Generator().manual_seed(5), reference=reference, reference_rows=rows)
    for a, b in zip(plain.stages, reused.stages):
        assert torch.equal(a.grid_coord, b.grid_coord) and torch.equal(a.batch, b.batch)
        assert torch.equal(a.pooling_inverse, b.pooling_inverse) if a.pooling_inverse is not None else True
        assert torch.equal(a.codes, b.codes) and torch.equal(a.feat, b.feat)
    for a, b in zip(plain.neighbour_maps, reused.neighbour_maps):
        assert torch.equal(a.index, b.index)
    same = model(point, generator=torch.Generator().manual_seed(5), reference=reference)
    assert all(a is b for a, b in zip(same.neighbour_maps, reference.neighbour_maps))
    assert torch.equal(same.stages[-1].feat, model(point, generator=torch.Generator().manual_seed(5)).stages[-1].feat)
    with pytest.raises(ValueError, match="reference pass does not match"):
        model(subset, reference=reference)  # rows None claims the reference's 250 voxels
