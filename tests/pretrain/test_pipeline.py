import math

import pytest
import torch

from dos.data.transforms import SpatialAugment, grid_fragments, grid_sample, linear_keys
from dos.objectives.targets import TargetConfig
from dos.pretrain.batch import collate_pairs, make_view_pair
from dos.pretrain.masking import MaskingConfig
from dos.pretrain.masking import block_mask
from dos.pretrain.matching import radius_nearest, same_view_pairs
from dos.pretrain.model import DistillConfig, DOSPretrainer
from dos.pretrain.schedules import cosine, linear_warmup
from dos.pretrain.student_input import build_student_input
from dos.pretrain.teacher import ema_update, make_teacher
from dos.pretrain.views import ViewConfig, make_views
from tests.pretrain.toy_encoder import ToyEncoder


def _scene(n=600, seed=0, extent=4.0):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g) * torch.tensor([extent, extent, 1.0])
    feat = torch.rand(n, 1, generator=g)
    return coord, feat


def test_block_mask_masks_the_requested_fraction_of_blocks_per_cloud():
    coord = torch.cat([_scene(2000, 0, 8.0)[0], _scene(1500, 1, 6.0)[0]])
    offset = torch.tensor([2000, 3500])
    masked = block_mask(coord, offset, block_size=1.0, ratio=0.7, generator=torch.Generator().manual_seed(0))
    for a, b in [(0, 2000), (2000, 3500)]:
        cells = torch.floor((coord[a:b] - coord[a:b].amin(0)) / 1.0).long()
        keys = linear_keys(cells)
        blocks = torch.unique(keys)
        masked_blocks = torch.unique(keys[masked[a:b]])
        assert len(masked_blocks) == round(0.7 * len(blocks))
        # whole blocks: a block is either fully masked or fully visible
        assert not torch.isin(keys[~masked[a:b]], masked_blocks).any()
    again = block_mask(coord, offset, 1.0, 0.7, torch.Generator().manual_seed(0))
    assert torch.equal(masked, again)


def test_grid_sample_keeps_one_random_point_per_voxel_and_fragments_cover_everything():
    coord, _ = _scene(5000, 2, 2.0)
    s1 = grid_sample(coord, 0.1, torch.Generator().manual_seed(1))
    s2 = grid_sample(coord, 0.1, torch.Generator().manual_seed(2))
    assert len(torch.unique(linear_keys(s1.grid_coord))) == len(s1.index)  # one per voxel
    assert torch.equal(s1.grid_coord[s1.inverse], torch.floor((coord - coord.amin(0)) / 0.1).long())
    assert not torch.equal(s1.index, s2.index)  # random choice within voxels
    fragments = grid_fragments(coord, 0.1)
    assert torch.equal(torch.unique(torch.cat(fragments)), torch.arange(5000))
    assert all(len(f) == len(s1.index) for f in fragments)


def test_views_share_the_crop_and_keep_original_coordinates():
    coord, feat = _scene(3000, 3)
    cfg = ViewConfig(grid_size=0.05, crop_ratio=(0.5, 0.5))
    v1, v2 = make_views(coord, feat, cfg, torch.Generator().manual_seed(0))
    # every origin coordinate is an original point; the augmented coordinates are not
    originals = {tuple(p) for p in coord.tolist()}
    assert all(tuple(p) in originals for p in v1.origin_coord.tolist()[:200])
    assert not torch.allclose(v1.coord, v1.origin_coord)
    assert v1.feat.shape[1] == 4  # xyz + intensity
    # the augmentation is a rotation/scale/flip (+ small jitter): pairwise distances are preserved up to scale
    d_aug = torch.cdist(v1.coord[:50], v1.coord[:50])
    d_org = torch.cdist(v1.origin_coord[:50], v1.origin_coord[:50])
    ratio = (d_aug[d_org > 0.5] / d_org[d_org > 0.5])
    assert ratio.std() < 0.05 and 0.85 < ratio.mean() < 1.15


def _batch(mode, seed=0, samples=2, ratio=0.6):
    g = torch.Generator().manual_seed(seed)
    cfg = ViewConfig(grid_size=0.1, crop_ratio=(0.8, 1.0), spatial=SpatialAugment(rotate=0.3, jitter_sigma=0.0))
    masking = MaskingConfig(ratio=ratio, block_size=0.5)
    pairs = [make_view_pair(*_scene(700, seed + i), cfg, masking, g) for i in range(samples)]
    return collate_pairs(pairs, mode)


def test_student_inputs_per_mode():
    obs = _batch("observable")
    assert torch.equal(obs.student.index, (~obs.masked).nonzero().squeeze(1))
    assert obs.student.token_mask is None and obs.student.supervised.all()
    naive = _batch("naive")
    assert len(naive.student.index) == len(naive.coord) and torch.equal(naive.student.supervised, naive.masked)
    jit = _batch("token_jitter")
    assert torch.equal(jit.student.token_mask, jit.masked)
    # jitter moved some masked voxels, never a visible one, and voxels stay unique per cloud
    moved = (jit.student.grid_coord != jit.grid_coord).any(1)
    assert moved.any() and not moved[~jit.masked].any()
    cloud = torch.repeat_interleave(torch.arange(len(jit.offset)), torch.diff(jit.offset, prepend=torch.tensor([0])))
    keys = linear_keys(torch.cat([cloud[:, None], jit.student.grid_coord], 1))
    assert len(torch.unique(keys)) == len(keys)


def _student_outputs(encoder, batch, mask_token):
    s = batch.student
    return encoder(s.coord, s.feat, s.grid_coord, s.offset, token_mask=s.token_mask, mask_token=mask_token)


def _perturb_masked(batch, mode, seed=9):
    g = torch.Generator().manual_seed(seed)
    m = batch.masked
    coord, feat, grid = batch.coord.clone(), batch.feat.clone(), batch.grid_coord.clone()
    # move every masked point by the same large vector: voxels stay unique, positions change
    grid[m] = grid[m] + torch.tensor([3, 2, 40])
    coord[m] = coord[m] + torch.tensor([0.3, 0.2, 4.0])
    feat[m] = torch.rand(int(m.sum()), feat.shape[1], generator=g)
    student = build_student_input(coord, feat, grid, batch.offset, m, mode, 0.1, torch.Generator().manual_seed(1))
    return student


def _encoder(kind, in_channels):
    if kind == "toy":
        return ToyEncoder(in_channels=in_channels)
    from dos.models.ptv3 import ptv3_from_config
    from dos.pretrain.encoder import PTv3Encoder

    backbone = ptv3_from_config("smoke", in_channels=in_channels, drop_path=0.0, shuffle_orders=False)
    return PTv3Encoder(backbone, supervision_stage=1).eval()


@pytest.mark.parametrize("encoder_kind", ["toy", "ptv3"])
@pytest.mark.parametrize("mode", ["observable", "naive"])
def test_no_positional_leakage_in_observable_mode_and_leakage_in_naive_mode(mode, encoder_kind):
    torch.manual_seed(0)
    batch = _batch(mode, ratio=0.5)
    encoder = _encoder(encoder_kind, batch.feat.shape[1])
    token = torch.randn(encoder.embed_channels)
    before = _student_outputs(encoder, batch, token)
    batch.student = _perturb_masked(batch, mode)
    after = _student_outputs(encoder, batch, token)
    visible_points = (~batch.masked[batch.student.index]).nonzero().squeeze(1)
    visible_units = torch.unique(before.point_to_unit[visible_points])
    if mode == "observable":
        assert torch.equal(before.unit_feat, after.unit_feat)  # bit-identical at every visible unit
        assert torch.equal(before.point_to_unit, after.point_to_unit)
    else:
        # units made only of visible points still change, because masked tokens' positions reach them
        only_visible = torch.ones(len(before.unit_feat), dtype=torch.bool).scatter_reduce(
            0, before.point_to_unit, ~batch.masked, reduce="amin")
        units = visible_units[only_visible[visible_units]]
        assert len(units) > 0
        same = torch.equal(before.unit_feat[units], after.unit_feat[units])
        assert not same


def test_radius_nearest_matches_brute_force():
    g = torch.Generator().manual_seed(4)
    q, r = torch.rand(300, 3, generator=g) * 3, torch.rand(400, 3, generator=g) * 3
    qc, rc = torch.randint(0, 2, (300,), generator=g), torch.randint(0, 2, (400,), generator=g)
    got = radius_nearest(q, qc, r, rc, 0.3)
    d = torch.cdist(q.double(), r.double())
    d[qc[:, None] != rc[None, :]] = float("inf")
    best = d.argmin(1)
    expected = torch.where(d.min(1).values <= 0.3, best, torch.full_like(best, -1))
    assert torch.equal(got, expected)
    assert (got == -1).any() and (got >= 0).any()


def test_same_view_pairs_follow_the_view_points():
    student_unit = torch.tensor([0, 0, 1, 2, 2])
    index = torch.tensor([1, 2, 4, 6, 7])
    teacher_unit = torch.tensor([0, 5, 5, 3, 7, 3, 9, 9])
    assert same_view_pairs(student_unit, index, teacher_unit, 3).tolist() == [5, 7, 9]


def test_ema_and_schedules():
    student = torch.nn.Linear(3, 2)
    teacher = make_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        student.weight.add_(1.0)
    before = teacher.weight.clone()
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, 0.9 * before + 0.1 * student.weight)
    assert cosine(0.994, 1.0, 0.0) == pytest.approx(0.994) and cosine(0.994, 1.0, 1.0) == pytest.approx(1.0)
    assert cosine(0.994, 1.0, 0.5) == pytest.approx(0.997)
    assert linear_warmup(0.04, 0.07, 0.025, 0.05) == pytest.approx(0.055)
    assert linear_warmup(0.04, 0.07, 0.5, 0.05) == 0.07


def test_a_samples_views_and_masks_do_not_depend_on_its_batch():
    cfg = ViewConfig(grid_size=0.1)
    masking = MaskingConfig(ratio=0.5, block_size=0.5)
    alone = make_view_pair(*_scene(500, 1), cfg, masking, torch.Generator().manual_seed(7))
    other = make_view_pair(*_scene(500, 2), cfg, masking, torch.Generator().manual_seed(8))
    again = make_view_pair(*_scene(500, 1), cfg, masking, torch.Generator().manual_seed(7))
    batch = collate_pairs([other, again], "observable")
    n_other = other.views[0].coord.shape[0]
    n_alone = alone.views[0].coord.shape[0]
    assert torch.equal(batch.masked[n_other:n_other + n_alone], alone.masks[0])
    assert torch.equal(batch.coord[n_other:n_other + n_alone], alone.views[0].coord)


@pytest.mark.parametrize("mode,target,cross_view", [
    ("observable", TargetConfig("softmap", zipf_alpha=1.3), True),
    ("observable", TargetConfig("softmap", zipf_alpha=1.3), False),
    ("observable", TargetConfig("clustering"), True),
    ("observable", TargetConfig("regression"), True),
    ("naive", TargetConfig("clustering"), True),
    ("token_jitter", TargetConfig("clustering"), True),
])
@pytest.mark.parametrize("encoder_kind", ["toy", "ptv3"])
def test_pretrainer_step_trains_the_student_only_and_counts_pairs(mode, target, cross_view, encoder_kind):
    torch.manual_seed(0)
    batch = _batch(mode)
    encoder = _encoder(encoder_kind, batch.feat.shape[1]).train()
    model = DOSPretrainer(encoder, DistillConfig(mode=mode, cross_view=cross_view, cross_view_radius=0.4,
                                                 head_hidden=32, head_dim=8, num_prototypes=16), target)
    loss, stats = model(batch, student_temp=0.1, teacher_temp=0.05)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    first_weight = next(p for p in model.student["encoder"].parameters())
    assert first_weight.grad is not None and first_weight.grad.abs().sum() > 0
    if mode != "observable":
        assert model.mask_token.grad is not None
    assert stats["units_supervised"] > 0
    if cross_view:
        assert stats["cross_matched"] > 0
        assert stats["cross_matched"] + stats["cross_unmatched"] == stats["units_supervised"]
    if target.target == "regression":  # trains no prototypes: no usage statistic (its guard is the rank)
        assert "prototype_entropy" not in stats and "prototype_perplexity_fraction" not in stats
    else:
        assert 0 < stats["prototype_perplexity_fraction"] <= 1
