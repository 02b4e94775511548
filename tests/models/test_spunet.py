import pytest
import torch

from dos.models import Point, upcast
from dos.models.ops.sparse_conv import SparseConv3d, SparseInverseConv3d, downsample_map, weight_to_spconv
from dos.models.spunet import SPUNet, load_spunet_config, spunet_from_config
from tests.models.helpers import random_batch

SMOKE_WIDTHS = [8, 8, 16]  # stem, encoder stage 0, encoder stage 1


def smoke_model(**overrides) -> SPUNet:
    torch.manual_seed(0)
    return spunet_from_config("smoke", in_channels=6, **overrides)


def randomise_batch_norms(model: SPUNet) -> SPUNet:
    """Non-trivial running statistics and affine parameters, so eval-mode BN is not the identity."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model


def permuted(point: Point, perm: torch.Tensor) -> Point:
    return Point(coord=point.coord[perm], feat=point.feat[perm], grid_coord=point.grid_coord[perm],
                 offset=point.offset, grid_size=point.grid_size)


def test_shapes_and_configs():
    point = random_batch([150, 70], [(10, 10, 6), (8, 8, 4)])
    out = smoke_model(enc_mode=False).eval()(point)
    assert out.decoded.feat.shape == (220, 8)
    assert torch.equal(out.decoded.grid_coord, point.grid_coord)
    assert [s.feat.shape[1] for s in out.stages] == SMOKE_WIDTHS
    for s in range(1, 3):
        fine, coarse = out.stages[s - 1], out.stages[s]
        assert coarse.pooling_parent is fine
        assert torch.equal(coarse.grid_coord[coarse.pooling_inverse], fine.grid_coord // 2)
        assert torch.equal(coarse.batch[coarse.pooling_inverse], fine.batch)
        assert coarse.num_clouds == 2
    paper = load_spunet_config("paper")
    assert paper["channels"] == (32, 64, 128, 256, 256, 128, 96, 96)
    assert paper["layers"] == (2, 3, 4, 6, 2, 2, 2, 2)
    for name in ("paper", "mini", "smoke"):
        with torch.device("meta"):  # shapes only: no time spent initialising the paper-size weights
            model = spunet_from_config(name, in_channels=4, enc_mode=False)
        assert model.num_stages == len(load_spunet_config(name)["layers"]) // 2
    assert model.enc_channels == (8, 8, 16) and model.out_channels == 8
    with pytest.raises(TypeError):
        spunet_from_config("smoke", chanels=(8, 8))


def test_encoder_mode_upcasts_every_stage_to_full_resolution():
    model = smoke_model(enc_mode=True).eval()
    assert len(model.up) == 0 and len(model.dec) == 0
    point = random_batch([160, 90], [(10, 10, 6), (9, 9, 5)])
    out = model(point)
    assert out.decoded is None
    feat = upcast(out.stages, 0)
    assert feat.shape == (250, sum(SMOKE_WIDTHS))
    coarsest = out.stages[2].feat[out.stages[2].pooling_inverse][out.stages[1].pooling_inverse]
    torch.testing.assert_close(feat[:, -16:], coarsest)


def test_permuting_points_permutes_outputs():
    model = randomise_batch_norms(smoke_model(enc_mode=False)).eval()
    point = random_batch([120, 90], [(10, 10, 6), (9, 9, 5)])
    perm = torch.cat([torch.randperm(120), 120 + torch.randperm(90)])
    out, out_perm = model(point), model(permuted(point, perm))
    torch.testing.assert_close(out_perm.decoded.feat, out.decoded.feat[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upcast(out_perm.stages, 0), upcast(out.stages, 0)[perm], atol=1e-5, rtol=1e-5)


def test_cloud_output_independent_of_batch_mates_in_eval_mode():
    model = randomise_batch_norms(smoke_model(enc_mode=False)).eval()
    both = random_batch([150, 60], [(12, 12, 6), (7, 7, 4)])  # the second cloud lies inside the first's extent
    alone = Point(coord=both.coord[:150], feat=both.feat[:150], grid_coord=both.grid_coord[:150],
                  offset=torch.tensor([150]), grid_size=both.grid_size)
    out_both, out_alone = model(both), model(alone)
    torch.testing.assert_close(out_both.decoded.feat[:150], out_alone.decoded.feat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upcast(out_both.stages, 0)[:150], upcast(out_alone.stages, 0), atol=1e-5, rtol=1e-5)


def test_gradients_finite_everywhere():
    model = smoke_model(enc_mode=False).train()
    point = random_batch([200, 80], [(12, 12, 6), (8, 8, 4)])
    point.feat.requires_grad_(True)
    out = model(point)
    (out.decoded.feat.square().mean() + upcast(out.stages, 0).square().mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert torch.isfinite(point.feat.grad).all()


def test_double_channels_doubles_every_width():
    with torch.device("meta"):  # shapes only
        single = spunet_from_config("mini", in_channels=4, enc_mode=False)
        double = spunet_from_config("mini", in_channels=4, enc_mode=False, channel_multiplier=2)
    assert double.enc_channels == tuple(2 * c for c in single.enc_channels)
    assert double.out_channels == 2 * single.out_channels
    widths = {name: p.shape for name, p in single.named_parameters()}
    for name, param in double.named_parameters():
        if name == "stem.conv.weight":  # input channels stay
            assert param.shape == (125, 4, 2 * widths[name][2])
        else:
            assert param.shape[-1] == 2 * widths[name][-1], name
    model = smoke_model(enc_mode=True, channel_multiplier=2).eval()
    out = model(random_batch([100], [(8, 8, 6)]))
    assert [s.feat.shape[1] for s in out.stages] == [2 * c for c in SMOKE_WIDTHS]


def test_strided_and_inverse_convs_match_spconv():
    spconv = pytest.importorskip("spconv.pytorch", reason="spconv not installed: optional reference")
    from spconv.core import ConvAlgo

    point = random_batch([150, 70], [(10, 10, 6), (8, 8, 4)])
    maps = downsample_map(point.grid_coord, point.batch)
    torch.manual_seed(0)
    down, up = SparseConv3d(6, 5).double(), SparseInverseConv3d(5, 3).double()
    x = point.feat.double()
    coarse, fine = down(x, maps), up(down(x, maps), maps)
    indices = torch.cat([point.batch[:, None], point.grid_coord], 1).int()
    tensor = spconv.SparseConvTensor(x, indices, [12, 12, 12], 2)
    ref_down = spconv.SparseConv3d(6, 5, 2, stride=2, bias=False, algo=ConvAlgo.Native, indice_key="d").double()
    ref_up = spconv.SparseInverseConv3d(5, 3, 2, bias=False, algo=ConvAlgo.Native, indice_key="d").double()
    with torch.no_grad():
        ref_down.weight.copy_(weight_to_spconv(down.weight, 2))
        ref_up.weight.copy_(weight_to_spconv(up.weight, 2))
    ref_coarse = ref_down(tensor)

    def rows(indices_b_xyz, batch, grid):  # spconv row of each of our voxels
        keys = lambda b, g: ((b * 64 + g[:, 0]) * 64 + g[:, 1]) * 64 + g[:, 2]  # noqa: E731
        ref_keys = keys(indices_b_xyz[:, 0].long(), indices_b_xyz[:, 1:].long())
        order = torch.argsort(ref_keys)
        return order[torch.searchsorted(ref_keys[order], keys(batch, grid))]

    coarse_rows = rows(ref_coarse.indices, maps.coarse_batch, maps.coarse_grid_coord)
    torch.testing.assert_close(ref_coarse.features[coarse_rows], coarse)
    ref_in = torch.empty_like(ref_coarse.features)
    ref_in[coarse_rows] = coarse
    ref_fine = ref_up(ref_coarse.replace_feature(ref_in))
    torch.testing.assert_close(ref_fine.features[rows(ref_fine.indices, point.batch, point.grid_coord)], fine)


def test_masked_points_inputs_reach_nothing_and_pretraining_encoder_accepts_spunet():
    from dos.pretrain.encoder import PTv3Encoder

    model = randomise_batch_norms(smoke_model(enc_mode=True)).eval()
    point = random_batch([150, 70], [(10, 10, 6), (8, 8, 4)])
    mask = torch.rand(220, generator=torch.Generator().manual_seed(0)) < 0.5
    token = torch.randn(8)
    out = model(point, token_mask=mask, mask_token=token)
    other = point.with_feat(torch.where(mask[:, None], torch.randn(220, 6), point.feat))
    torch.testing.assert_close(upcast(model(other, token_mask=mask, mask_token=token).stages, 0),
                               upcast(out.stages, 0))
    assert torch.equal(out.stages[0].feat[mask], token.expand(int(mask.sum()), 8))
    encoder = PTv3Encoder(model, supervision_stage=1)
    assert encoder.embed_channels == 8 and encoder.out_channels == 8 + 16
    result = encoder(point.coord, point.feat, point.grid_coord, point.offset, token_mask=mask, mask_token=token)
    assert result.unit_feat.shape == (out.stages[1].num_points, 24)
