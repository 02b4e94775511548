import pytest
import torch

from dos.detection.bev import BevGrid, scatter_to_bev

GRID = BevGrid((-2.0, -2.0, -1.0, 2.0, 2.0, 1.0), 1.0)   # 4 x 4 cells of 1 m


def test_grid_shape_and_rejects_partial_cells():
    assert BevGrid((-4.0, -2.0, -1.0, 4.0, 2.0, 1.0), 0.5).shape == (8, 16)   # rows along y, columns along x
    with pytest.raises(ValueError, match="whole number of cells"):
        BevGrid((-2.0, -2.0, -1.0, 2.0, 2.0, 1.0), 0.3)
    with pytest.raises(ValueError, match="min < max"):
        BevGrid((2.0, -2.0, -1.0, -2.0, 2.0, 1.0), 1.0)


def test_point_lands_in_its_cell():
    feat = torch.tensor([[3.0, -5.0]])
    coord = torch.tensor([[0.5, -1.5, 0.0]])      # x in cell column 2, y in cell row 0
    bev = scatter_to_bev(feat, coord, torch.tensor([1]), GRID)
    assert bev.shape == (1, 2, 4, 4)
    assert torch.equal(bev[0, :, 0, 2], feat[0])
    bev[0, :, 0, 2] = 0
    assert not bev.any()


def test_batches_do_not_mix():
    coord = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])        # the same cell in two clouds
    feat = torch.tensor([[1.0], [7.0]])
    bev = scatter_to_bev(feat, coord, torch.tensor([1, 2]), GRID)
    assert bev[0, 0, 2, 2] == 1.0 and bev[1, 0, 2, 2] == 7.0
    assert bev.count_nonzero() == 2
    bev = scatter_to_bev(feat, coord, torch.tensor([1, 1, 2]), GRID, "mean")    # an empty cloud in between
    assert bev[0, 0, 2, 2] == 1.0 and not bev[1].any() and bev[2, 0, 2, 2] == 7.0


def test_max_and_mean_pool():
    coord = torch.tensor([[-1.9, 1.1, 0.0], [-1.1, 1.9, 0.5]])      # both in row 3, column 0
    feat = torch.tensor([[1.0, -4.0], [3.0, -6.0]])
    offset = torch.tensor([2])
    assert scatter_to_bev(feat, coord, offset, GRID, "max")[0, :, 3, 0].tolist() == [3.0, -4.0]
    assert scatter_to_bev(feat, coord, offset, GRID, "mean")[0, :, 3, 0].tolist() == [2.0, -5.0]


def test_points_outside_the_range_are_dropped():
    coord = torch.tensor([[2.0, 0.0, 0.0], [0.0, -2.1, 0.0], [0.0, 0.0, 1.5]])   # x at max, y below, z above
    bev = scatter_to_bev(torch.ones(3, 1), coord, torch.tensor([3]), GRID)
    assert not bev.any()


def test_gradient_reaches_the_pooled_point():
    feat = torch.tensor([[1.0], [2.0]], requires_grad=True)
    coord = torch.tensor([[0.2, 0.2, 0.0], [0.7, 0.7, 0.0]])        # same cell: max is the second
    scatter_to_bev(feat, coord, torch.tensor([2]), GRID).sum().backward()
    assert feat.grad.flatten().tolist() == [0.0, 1.0]
