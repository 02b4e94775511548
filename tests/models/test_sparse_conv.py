import pytest
import torch
import torch.nn.functional as F

from dos.models.ops import sparse_conv
from dos.models.ops.sparse_conv import (NeighbourMap, SubMConv3d, downsample_map, gather_conv, kernel_offsets,
                                        submanifold_neighbours, transpose_neighbours, weight_to_dense)
from tests.models.helpers import random_voxels

SIDE = 6


def sparse_grid(num_per_cloud=(60, 45), seed=0):
    g = torch.Generator().manual_seed(seed)
    grids = [random_voxels(n, (SIDE, SIDE, SIDE), g) for n in num_per_cloud]
    batch = torch.cat([torch.full((n,), b) for b, n in enumerate(num_per_cloud)])
    return torch.cat(grids), batch


def densify(x, grid, batch, num_clouds, side=SIDE):
    """[N, C] sparse -> [B, C, side, side, side] dense (differentiable in x)."""
    dense = x.new_zeros(num_clouds, side, side, side, x.shape[1])
    dense = dense.index_put((batch, grid[:, 0], grid[:, 1], grid[:, 2]), x)
    return dense.permute(0, 4, 1, 2, 3)


def at_voxels(dense, grid, batch):
    return dense.permute(0, 2, 3, 4, 1)[batch, grid[:, 0], grid[:, 1], grid[:, 2]]


@pytest.mark.parametrize("kernel_size,dtype,tol", [(3, torch.float32, 1e-5), (3, torch.float64, 1e-10),
                                                    (5, torch.float64, 1e-10)])
def test_submanifold_conv_matches_dense_conv3d(kernel_size, dtype, tol):
    grid, batch = sparse_grid()
    torch.manual_seed(0)
    conv = SubMConv3d(5, 7, kernel_size, bias=True, backend="torch").to(dtype)
    with torch.no_grad():
        conv.weight.normal_()
        conv.bias.normal_()
    x = torch.randn(len(grid), 5, dtype=dtype, requires_grad=True)
    neighbours = NeighbourMap.submanifold(grid, batch, kernel_size)
    out = conv(x, neighbours)

    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = conv.weight.detach().clone().requires_grad_(True)
    dense = F.conv3d(densify(x_ref, grid, batch, 2), weight_to_dense(w_ref, kernel_size), conv.bias.detach(),
                     padding=kernel_size // 2)
    ref = at_voxels(dense, grid, batch)
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)

    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=tol, rtol=tol)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, atol=tol * 10, rtol=tol)


def test_gradcheck_gather_conv():
    grid, batch = sparse_grid((9, 7), seed=3)
    nbr = submanifold_neighbours(grid, batch, 3)
    x = torch.randn(len(grid), 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(27, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gather_conv(a, nbr, b, nbr.flip(1)), (x, w))


def test_chunking_does_not_change_results(monkeypatch):
    grid, batch = sparse_grid()
    nbr = submanifold_neighbours(grid, batch, 3)
    x = torch.randn(len(grid), 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(27, 4, 3, dtype=torch.float64, requires_grad=True)
    out = gather_conv(x, nbr, w)
    gx, gw = torch.autograd.grad(out.square().sum(), (x, w))
    monkeypatch.setattr(sparse_conv, "CHUNK_ELEMENTS", 27 * 4 * 7)  # 7 rows per chunk
    out2 = gather_conv(x, nbr, w)
    gx2, gw2 = torch.autograd.grad(out2.square().sum(), (x, w))
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(gx, gx2)
    torch.testing.assert_close(gw, gw2)


def test_submanifold_transpose_is_offset_reversal():
    grid, batch = sparse_grid()
    nbr = submanifold_neighbours(grid, batch, 3)
    assert torch.equal(transpose_neighbours(nbr, len(grid)), nbr.flip(1))
    assert torch.equal(nbr[:, 13], torch.arange(len(grid)))  # centre offset is the voxel itself
    assert torch.equal(kernel_offsets(3)[13], torch.zeros(3, dtype=torch.long))


def test_neighbours_do_not_cross_clouds():
    grid = torch.tensor([[1, 1, 1], [1, 1, 2], [1, 1, 1]])
    batch = torch.tensor([0, 0, 1])
    nbr = submanifold_neighbours(grid, batch, 3)
    assert sorted(nbr[2][nbr[2] >= 0].tolist()) == [2]
    assert sorted(nbr[0][nbr[0] >= 0].tolist()) == [0, 1]


def test_duplicate_voxels_raise():
    grid = torch.tensor([[1, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="duplicate voxels"):
        submanifold_neighbours(grid, torch.zeros(2, dtype=torch.long))


def test_downsample_and_upsample_maps():
    grid, batch = sparse_grid()
    maps = downsample_map(grid, batch, stride=2)
    assert torch.equal(maps.coarse_grid_coord[maps.parent], grid // 2)
    assert torch.equal(maps.coarse_batch[maps.parent], batch)
    # coarse voxels are unique per cloud and every fine voxel appears exactly once in the down map
    keys = maps.coarse_batch * 1000 + (maps.coarse_grid_coord * torch.tensor([100, 10, 1])).sum(1)
    assert len(torch.unique(keys)) == len(keys)
    assert sorted(maps.index[maps.index >= 0].tolist()) == list(range(len(grid)))
    sub = grid % 2
    k = sub[:, 0] * 4 + sub[:, 1] * 2 + sub[:, 2]
    assert torch.equal(maps.index[maps.parent, k], torch.arange(len(grid)))
    assert torch.equal(maps.up_index, transpose_neighbours(maps.index, len(grid)))
    assert torch.equal(maps.up_index[torch.arange(len(grid)), k], maps.parent)
    assert ((maps.up_index >= 0).sum(1) == 1).all()


def test_strided_conv_and_inverse_match_dense():
    grid, batch = sparse_grid()
    maps = downsample_map(grid, batch, stride=2)
    x = torch.randn(len(grid), 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 3, 4, dtype=torch.float64, requires_grad=True)
    down = maps.down()
    out = gather_conv(x, down.index, w, down.transposed)
    dense = F.conv3d(densify(x, grid, batch, 2), weight_to_dense(w, 2), stride=2)
    torch.testing.assert_close(out, at_voxels(dense, maps.coarse_grid_coord, maps.coarse_batch))

    coarse = torch.randn(len(maps.parent.unique()), 4, dtype=torch.float64)
    w_up = torch.randn(8, 4, 3, dtype=torch.float64)
    up = maps.up(grid, batch)
    fine = gather_conv(coarse, up.index, w_up, up.transposed)
    dense_up = F.conv_transpose3d(densify(coarse, maps.coarse_grid_coord, maps.coarse_batch, 2, SIDE // 2),
                                  weight_to_dense(w_up, 2).transpose(0, 1), stride=2)
    torch.testing.assert_close(fine, at_voxels(dense_up, grid, batch))
    assert torch.autograd.gradcheck(lambda a, b: gather_conv(a, down.index, b, down.transposed),
                                    (x[:, :2].detach().requires_grad_(), w[:, :2].detach().requires_grad_()))


def test_spconv_backend_matches_torch():
    pytest.importorskip("spconv", reason="spconv not installed: optional accelerator")
    grid, batch = sparse_grid()
    torch.manual_seed(0)
    conv = SubMConv3d(4, 6, 3, backend="torch")
    neighbours = NeighbourMap.submanifold(grid, batch, 3)
    x = torch.randn(len(grid), 4, requires_grad=True)
    ref = conv(x, neighbours)
    gx_ref, gw_ref = torch.autograd.grad(ref.square().sum(), (x, conv.weight))
    conv.backend = "spconv"
    out = conv(x, neighbours)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if x.is_cuda:  # the CPU spconv backward needs CUDA
        gx, gw = torch.autograd.grad(out.square().sum(), (x, conv.weight))
        torch.testing.assert_close(gx, gx_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gw, gw_ref, atol=1e-5, rtol=1e-5)


def test_backend_selection_is_lazy_and_explicit():
    x = torch.zeros(1, 1)
    assert sparse_conv.select_conv_backend(x) == "torch"  # CPU never auto-selects spconv
    assert sparse_conv.select_conv_backend(x, "spconv") == "spconv"
    with pytest.raises(ValueError):
        sparse_conv.select_conv_backend(x, "cuda-magic")


@pytest.mark.parametrize("count, extent, kernel_size", [(3000, (40, 40, 6), 3), (500, (12, 12, 12), 5),
                                                         (1, (4, 4, 4), 3), (200, (200, 200, 200), 3)])
def test_planned_conv_equals_the_dense_gather_with_gradients(count, extent, kernel_size):
    """The pair-grouped conv (SubMConv3d's CPU/CUDA path) gives the gather conv's output and gradients (float64,
    dense and very sparse voxel sets, a lone voxel, a 5^3 kernel), and is deterministic."""
    from dos.models.ops.sparse_conv import PlannedConv, pair_plan

    generator = torch.Generator().manual_seed(count)
    grid = random_voxels(count, extent, generator)
    batch = (torch.arange(count) >= count // 2).long()
    neighbours = NeighbourMap.submanifold(grid, batch, kernel_size)
    x = torch.randn(count, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    w = torch.randn(kernel_size ** 3, 5, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    want = gather_conv(x, neighbours.index, w, neighbours.transposed)
    want_grads = torch.autograd.grad((want * torch.arange(7.0, dtype=torch.float64)).sum(), (x, w))
    plan = neighbours.plan()
    assert plan is neighbours.plan()  # built once per voxel set
    got = PlannedConv.apply(x, w, plan)
    got_grads = torch.autograd.grad((got * torch.arange(7.0, dtype=torch.float64)).sum(), (x, w))
    assert torch.allclose(got, want, atol=1e-12, rtol=1e-10)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, atol=1e-12, rtol=1e-10)
    again = PlannedConv.apply(x.detach().float(), w.detach().float(), pair_plan(neighbours.index, count))
    assert torch.equal(again, PlannedConv.apply(x.detach().float(), w.detach().float(), plan))
    # every active pair is planned exactly once
    assert int(plan.output_lengths.sum()) == int((neighbours.index >= 0).sum()) == len(plan.by_output)
    # the CPU's sums of the pair products (index_add_ over the slots) are CUDA's (segment sums by output or input)
    from dos.models.ops.sparse_conv import _planned_products, _segment_sum, _sum_pairs

    xd = x.detach()
    products = _planned_products(xd, plan.in_rows, [w.detach()[k] for k in plan.offsets])
    assert torch.allclose(_sum_pairs(products, plan.forward_targets, plan.by_output, plan.output_lengths, count, 7),
                          _segment_sum(products, plan.by_output, plan.output_lengths, count, 7), atol=1e-12)
    g = torch.cat([torch.randn(count, 7, dtype=torch.float64, generator=generator), torch.zeros(1, 7).double()])
    back = _planned_products(g, plan.out_rows, [w.detach()[k].transpose(1, 2) for k in plan.offsets])
    assert torch.allclose(_sum_pairs(back, plan.backward_targets, plan.by_input, plan.input_lengths, count, 5),
                          _segment_sum(back, plan.by_input, plan.input_lengths, count, 5), atol=1e-12)


def test_the_submanifold_map_of_a_subset_is_read_from_the_full_map():
    """A subset's neighbour map, renumbered from the full set's, is the map a voxel search on the subset builds
    (the student's maps are read from the teacher's); None means the same voxels and returns the map itself."""
    grid, batch = sparse_grid((90, 70), seed=3)
    full = NeighbourMap.submanifold(grid, batch)
    rows = torch.randperm(len(grid), generator=torch.Generator().manual_seed(1))[:100].sort().values
    subset = full.submanifold_subset(rows, grid[rows], batch[rows])
    searched = NeighbourMap.submanifold(grid[rows], batch[rows])
    assert torch.equal(subset.index, searched.index) and torch.equal(subset.transposed, searched.transposed)
    assert (subset.index >= 0).sum() < (full.index[rows] >= 0).sum()  # some neighbours left the subset
    assert full.submanifold_subset(None, grid, batch) is full


def test_padded_groups_have_the_least_padding():
    """The dynamic programme finds the partition of every brute-forced small case (runs of offsets sorted by
    pair count, at most max_groups runs, each padded to its largest count), and drops empty offsets."""
    import itertools

    from dos.models.ops.sparse_conv import padded_groups

    generator = torch.Generator().manual_seed(0)
    for trial in range(30):
        counts = torch.randint(0, 50, (7,), generator=generator).tolist()
        max_groups = 1 + trial % 4
        groups = padded_groups(counts, max_groups)
        cost = sum(len(g) * max(counts[k] for k in g) for g in groups)
        assert sorted(k for g in groups for k in g) == [k for k in range(7) if counts[k] > 0]
        assert len(groups) <= max_groups
        ordered = sorted((c for c in counts if c > 0), reverse=True)
        best = min(sum((b - a) * ordered[a] for a, b in zip((0,) + cuts, cuts + (len(ordered),)))
                   for g in range(max_groups) for cuts in itertools.combinations(range(1, len(ordered)), g))
        assert cost == best, (counts, max_groups, groups)
