import math

import pytest
import torch

from dos.data.transforms import grid_fragments, grid_sample, rotate_z, voxel_coords
from dos.engine.inference import IDENTITY, Augmentation, default_tta, predict_points

GRID = 0.25


def _uniform_cloud(n=500, seed=0):
    """Points in [-1, 1]^2 x [-0.5, 0.5] with |x| >= 0.01 and a point at the minimum corner, so that x = 0
    is exactly a voxel boundary (min x = -1, grid 0.25) and no voxel holds points of both signs of x."""
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 1.0]) \
        - torch.tensor([1.0, 1.0, 0.5])
    coord[:, 0] = torch.where(coord[:, 0].abs() < 0.01, coord[:, 0].sign() * 0.01 + 0.02, coord[:, 0])
    coord[0] = torch.tensor([-1.0, -1.0, -0.5])
    return coord.float()


def _clustered_cloud(seed=0):
    """Tight clusters (radius 0.01) on a grid of spacing 1 at z = -0.5 or +0.5: however the cloud is rotated,
    scaled or flipped, no voxel of size 0.25 holds points of two clusters, so a per-cluster function is
    recovered exactly from any point of each voxel."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.arange(-2.0, 3.0)
    centres = torch.cartesian_prod(xs, xs, torch.tensor([-0.5, 0.5]))        # 50 clusters
    per = 12
    coord = centres.repeat_interleave(per, 0) + (torch.rand(len(centres) * per, 3, generator=g) - 0.5) * 0.02
    cluster = torch.arange(len(centres)).repeat_interleave(per)
    return coord, cluster


def _one_hot_logits(labels, num_classes):
    return torch.nn.functional.one_hot(labels.long(), num_classes).float() * 20.0


def _sign_x_fn(coord, feat, grid_coord, offset):
    return _one_hot_logits(coord[:, 0] > 0, 2)


def _sign_z_fn(coord, feat, grid_coord, offset):
    return _one_hot_logits(coord[:, 2] > 0, 2)


def _label_from_feat_fn(num_classes):
    # the features are the per-point labels: the prediction of a kept point is its own label
    return lambda coord, feat, grid_coord, offset: _one_hot_logits(feat[:, 0], num_classes)


@pytest.mark.parametrize("fragments", [False, True])
def test_sign_of_x_recovered_on_every_point(fragments):
    coord = _uniform_cloud()
    out = predict_points(_sign_x_fn, coord, torch.zeros(len(coord), 1), GRID, num_classes=2, fragments=fragments)
    assert out.shape == (len(coord), 2) and out.dtype == torch.float32
    assert torch.equal(out.argmax(1), (coord[:, 0] > 0).long())


@pytest.mark.parametrize("fragments", [False, True])
def test_tta_invariant_function_recovered_on_every_point(fragments):
    # sign of z is unchanged by z rotations, positive scalings and x flips; the predict_fn sees the
    # augmented coordinates, so this checks that they stay aligned with the points they are mapped back to.
    coord, _ = _clustered_cloud()
    out = predict_points(_sign_z_fn, coord, torch.zeros(len(coord), 1), GRID, num_classes=2,
                         fragments=fragments, augmentations=default_tta(), max_points_per_call=5000)
    assert torch.equal(out.argmax(1), (coord[:, 2] > 0).long())
    # every point voted once per augmentation (no fragments) or at least once per augmentation (fragments)
    votes = out.sum(1)
    if fragments:
        assert (votes >= 16 - 1e-4).all()
    else:
        assert torch.allclose(votes, torch.full_like(votes, 16.0))


def test_per_cluster_labels_recovered_without_fragments_under_tta():
    coord, cluster = _clustered_cloud()
    labels = cluster % 7
    out = predict_points(_label_from_feat_fn(7), coord, labels[:, None].float(), GRID, num_classes=7,
                         augmentations=default_tta())
    assert torch.equal(out.argmax(1), labels)


def test_fragments_predict_every_point_itself_under_tta():
    # labels vary inside voxels: only fragments (every point predicted in some call) recover all of them
    coord = _uniform_cloud()
    labels = torch.randint(0, 5, (len(coord),), generator=torch.Generator().manual_seed(1))
    feat = labels[:, None].float()
    for augs in [(IDENTITY,), default_tta()]:
        out = predict_points(_label_from_feat_fn(5), coord, feat, GRID, num_classes=5, fragments=True,
                             augmentations=augs)
        assert torch.equal(out.argmax(1), labels)
    # without fragments each point gets the label of its voxel's first point (the grid-sample inverse)
    out = predict_points(_label_from_feat_fn(5), coord, feat, GRID, num_classes=5)
    sample = grid_sample(coord, GRID)
    assert torch.equal(out.argmax(1), labels[sample.index][sample.inverse])
    assert not torch.equal(out.argmax(1), labels)  # (the cloud does have mixed voxels)


class _Recorder:
    """A predict_fn that records its inputs; the features are the point ids."""

    def __init__(self):
        self.calls = []

    def __call__(self, coord, feat, grid_coord, offset):
        self.calls.append((coord.clone(), feat[:, 0].long(), grid_coord.clone(), offset.clone()))
        return torch.zeros(len(coord), 3)


def _record(coord, **kwargs):
    rec = _Recorder()
    ids = torch.arange(len(coord), dtype=torch.float32)[:, None]
    predict_points(rec, coord, ids, GRID, num_classes=3, **kwargs)
    return rec.calls


def test_call_counts_of_fragments_and_tta():
    coord = _uniform_cloud()
    n_voxels = len(grid_sample(coord, GRID).index)
    n_fragments = len(grid_fragments(coord, GRID))
    assert n_fragments > 1

    calls = _record(coord)
    assert len(calls) == 1 and len(calls[0][1]) == n_voxels
    assert len(_record(coord, fragments=True)) == n_fragments

    augs = default_tta()
    assert len(_record(coord, augmentations=augs)) == 16
    per_aug = [len(grid_fragments(a.apply(coord), GRID)) for a in augs]
    assert len(_record(coord, fragments=True, augmentations=augs)) == sum(per_aug)


def test_predict_fn_inputs_are_augmented_coords_original_features_and_voxels():
    coord = _uniform_cloud()
    augs = default_tta()
    calls = _record(coord, augmentations=augs)
    for aug, (c, ids, grid, offset) in zip(augs, calls):
        moved = aug.apply(coord)
        assert torch.equal(c, moved[ids])
        assert torch.equal(grid, voxel_coords(moved, GRID)[ids])
        assert torch.equal(offset, torch.tensor([len(ids)]))
        assert len(torch.unique(grid, dim=0)) == len(grid)  # one point per voxel


def test_batching_packs_whole_point_sets_within_the_limit():
    coord = _uniform_cloud()
    augs = default_tta()[:3]
    single = _record(coord, fragments=True, augmentations=augs)
    sizes = [len(call[1]) for call in single]

    packed = _record(coord, fragments=True, augmentations=augs, max_points_per_call=10**9)
    assert len(packed) == 1
    c, ids, grid, offset = packed[0]
    assert offset.tolist() == torch.cumsum(torch.tensor(sizes), 0).tolist()
    starts = [0] + offset.tolist()[:-1]
    for k, (a, b) in enumerate(zip(starts, offset.tolist())):  # segment k is exactly single call k
        assert torch.equal(ids[a:b], single[k][1]) and torch.equal(c[a:b], single[k][0])

    limit = 2 * max(sizes) + 1
    mid = _record(coord, fragments=True, augmentations=augs, max_points_per_call=limit)
    assert 1 < len(mid) < len(single)
    assert all(len(call[1]) <= limit for call in mid)
    assert torch.equal(torch.cat([call[1] for call in mid]), torch.cat([call[1] for call in single]))

    tiny = _record(coord, fragments=True, augmentations=augs, max_points_per_call=1)  # sets stay whole
    assert [len(call[1]) for call in tiny] == sizes


def test_voting_sums_probabilities_by_hand():
    # voxel A (grid 1) holds p0 and p1, voxel B holds p2: fragment 0 = {p0, p2}, fragment 1 = {p1, p2}
    # (p2 is repeated, since B has a single point). Without augmentation the flipped cloud (x -> -x) has the
    # same voxels. Call k returns the same probabilities for all its points: table[k].
    coord = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [2.5, 0.0, 0.0]])
    table = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])
    count = []

    def fn(c, feat, grid, offset):
        k = len(count)
        count.append(k)
        return table[k].log().expand(len(c), 2)

    out = predict_points(fn, coord, torch.zeros(3, 1), 1.0, num_classes=2, fragments=True,
                         augmentations=[IDENTITY, Augmentation(flip_x=True)])
    assert len(count) == 4  # 2 fragments x 2 augmentations
    expected = torch.tensor([
        [0.7 + 0.5, 0.3 + 0.5],                    # p0: fragment 0 of each augmentation
        [0.2 + 0.1, 0.8 + 0.9],                    # p1: fragment 1 of each augmentation
        [0.7 + 0.2 + 0.5 + 0.1, 0.3 + 0.8 + 0.5 + 0.9],  # p2: all four calls
    ])
    assert torch.allclose(out, expected, atol=1e-6)
    assert out.argmax(1).tolist() == [0, 1, 1]

    # without fragments p0 (first point of A) is kept, and p1 receives p0's probabilities
    feat = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7]])
    out = predict_points(lambda c, f, g, o: f.log(), coord, feat, 1.0, num_classes=2)
    assert torch.allclose(out, feat[[0, 0, 2]], atol=1e-6)


def test_augmentation_and_default_tta():
    p = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(Augmentation(rotate_z=math.pi / 2).apply(p), torch.tensor([[-2.0, 1.0, 3.0]]), atol=1e-6)
    assert torch.allclose(Augmentation(rotate_z=0.3, scale=2.0, flip_x=True).apply(p),
                          rotate_z(p, 0.3) * 2.0 * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-6)
    assert torch.equal(IDENTITY.apply(p), p)
    augs = default_tta()
    assert len(augs) == 16 and len(set(augs)) == 16
    assert {a.rotate_z for a in augs} == {0.0, math.pi / 2, math.pi, 3 * math.pi / 2}
    assert {a.scale for a in augs} == {0.95, 1.05} and {a.flip_x for a in augs} == {False, True}


def test_bad_inputs_raise():
    coord = _uniform_cloud(50)
    with pytest.raises(ValueError, match="logits"):
        predict_points(lambda c, f, g, o: torch.zeros(len(c), 3), coord, torch.zeros(50, 1), GRID, num_classes=2)
    with pytest.raises(ValueError, match="rows"):
        predict_points(_sign_x_fn, coord, torch.zeros(49, 1), GRID, num_classes=2)
    with pytest.raises(ValueError, match="augmentations"):
        predict_points(_sign_x_fn, coord, torch.zeros(50, 1), GRID, num_classes=2, augmentations=[])
