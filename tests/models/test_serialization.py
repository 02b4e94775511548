import pytest
import torch

from dos.models.point import Point, offset_to_batch
from dos.models.serialization import (ORDER_NAMES, check_code_fits, curve_code, hilbert_code, serialization_depth,
                                      serialize, z_order_code)
from tests.models.helpers import random_batch


def test_z_order_hand_examples():
    grid = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [3, 1, 2]])
    # x is the most significant bit of every 3-bit group: (3,1,2) -> bits (1,0,1)(1,1,0) = 0b101110
    assert z_order_code(grid, 2).tolist() == [4, 2, 1, 32, 46]
    assert curve_code(grid, 2, "z-trans").tolist() == [2, 4, 1, 16, 30]  # (1,3,2) -> 0b011110


def test_hilbert_hand_examples():
    # One bit per axis: the Hilbert index is the inverse Gray code of the interleaved bits (x, y, z).
    cells = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 0, 0]])
    assert hilbert_code(cells, 1).tolist() == list(range(8))
    # Two bits: worked through Skilling's transform by hand (leading zero bits swap axes, x<->y then x<->z).
    grid = torch.tensor([[1, 0, 0], [0, 0, 1], [2, 0, 0]])
    assert hilbert_code(grid, 2).tolist() == [3, 7, 60]
    assert curve_code(torch.tensor([[0, 1, 0]]), 2, "hilbert-trans").tolist() == [3]


@pytest.mark.parametrize("depth", [2, 3])
def test_hilbert_visits_every_cell_through_neighbours(depth):
    side = 2 ** depth
    axis = torch.arange(side)
    grid = torch.cartesian_prod(axis, axis, axis)
    code = hilbert_code(grid, depth)
    assert sorted(code.tolist()) == list(range(side ** 3))
    walk = grid[torch.argsort(code)]
    assert ((walk[1:] - walk[:-1]).abs().sum(1) == 1).all()


def test_codes_unique_and_order_inverse():
    point = random_batch([300, 200], [(12, 12, 6), (8, 20, 4)])
    serialize(point)
    assert point.codes.shape == (4, 500) and point.order_names == ORDER_NAMES
    for row in range(4):
        assert len(torch.unique(point.codes[row])) == 500
        assert torch.equal(point.order[row][point.inverse[row]], torch.arange(500))
        assert torch.equal(point.inverse[row][point.order[row]], torch.arange(500))
        # the batch id sits above the curve code: clouds stay contiguous and in batch order
        assert torch.equal(point.batch[point.order[row]], point.batch)
    assert point.depth == serialization_depth(point.grid_coord) == int(20).bit_length()


def test_curve_order_is_local():
    point = random_batch([2000], [(40, 40, 40)], seed=1)
    serialize(point)
    random_order = torch.randperm(2000, generator=torch.Generator().manual_seed(0))
    def mean_step(order):
        g = point.grid_coord[order].float()
        return (g[1:] - g[:-1]).norm(dim=1).mean()
    random_step = mean_step(random_order)
    for row in range(4):
        assert mean_step(point.order[row]) < 0.25 * random_step


def test_outdoor_scan_fits_and_too_large_raises():
    # 150 m x 150 m at 0.05 m: 3000 cells per axis, depth 12 -> 36 bits + batch bits
    grid = torch.tensor([[0, 0, 0], [2999, 2999, 400]] * 8)
    point = Point(coord=grid.float() * 0.05, feat=torch.zeros(16, 1), grid_coord=grid,
                  offset=torch.arange(2, 17, 2), grid_size=0.05)
    serialize(point)
    assert point.depth == 12
    huge = torch.tensor([[0, 0, 0], [2 ** 21, 5, 5]])
    big = Point(coord=huge.float(), feat=torch.zeros(2, 1), grid_coord=huge, offset=torch.tensor([2]),
                grid_size=0.05)
    with pytest.raises(ValueError, match="grid size of at least 0.2 m"):
        serialize(big)
    check_code_fits(20, num_clouds=7)  # 60 + 3 bits
    with pytest.raises(ValueError, match="at most 7 clouds"):
        check_code_fits(20, num_clouds=8)


def test_shuffle_is_deterministic_under_generator():
    point = random_batch([100], [(10, 10, 10)])
    names = [serialize(point, shuffle=True, generator=torch.Generator().manual_seed(s)).order_names for s in range(6)]
    again = [serialize(point, shuffle=True, generator=torch.Generator().manual_seed(s)).order_names for s in range(6)]
    assert names == again and len(set(names)) > 1
    assert all(sorted(n) == sorted(ORDER_NAMES) for n in names)


def test_offset_batch_helpers():
    from dos.models.point import batch_to_offset, offset_to_counts
    offset = torch.tensor([3, 3, 7])
    batch = offset_to_batch(offset)
    assert batch.tolist() == [0, 0, 0, 2, 2, 2, 2]
    assert torch.equal(batch_to_offset(batch, 3), offset)
    assert offset_to_counts(offset).tolist() == [3, 0, 4]


def test_grid_coord_per_cloud_min():
    coord = torch.tensor([[1.0, 1.0, 1.0], [1.26, 1.0, 1.0], [5.0, 5.0, 5.0], [5.15, 5.0, 5.35]])
    point = Point.from_coords(coord, torch.zeros(4, 1), torch.tensor([2, 4]), grid_size=0.1)
    assert point.grid_coord.tolist() == [[0, 0, 0], [2, 0, 0], [0, 0, 0], [1, 0, 3]]


def _z_order_bitwise(grid_coord, depth):
    """The definition, one bit at a time (the encoder before the table lookups)."""
    x, y, z = (grid_coord[:, i].long() for i in range(3))
    code = torch.zeros_like(x)
    for bit in range(depth):
        code |= ((x >> bit) & 1) << (3 * bit + 2)
        code |= ((y >> bit) & 1) << (3 * bit + 1)
        code |= ((z >> bit) & 1) << (3 * bit)
    return code


def _hilbert_bitwise(grid_coord, depth):
    """Skilling's transform, one bit and one axis at a time (the encoder before the table lookups)."""
    axes = [grid_coord[:, i].long().clone() for i in range(3)]
    for level in range(depth - 1, -1, -1):
        lower = (1 << level) - 1
        for dim in range(3):
            bit_set = ((axes[dim] >> level) & 1).bool()
            axes[0] = torch.where(bit_set, axes[0] ^ lower, axes[0])
            swap = torch.where(bit_set, torch.zeros_like(axes[0]), (axes[0] ^ axes[dim]) & lower)
            axes[dim] = axes[dim] ^ swap
            axes[0] = axes[0] ^ swap
    gray = _z_order_bitwise(torch.stack(axes, dim=1), depth)
    binary = gray.clone()
    shift = 1
    while shift < 3 * depth:
        binary ^= binary >> shift
        shift *= 2
    return binary


@pytest.mark.parametrize("depth", list(range(1, 22)))
def test_table_encoders_equal_the_bitwise_definitions(depth):
    g = torch.Generator().manual_seed(depth)
    grid = torch.randint(0, 2 ** depth, (3000, 3), generator=g)
    grid[:8] = torch.tensor([[0, 0, 0], [2 ** depth - 1] * 3, [2 ** depth - 1, 0, 0], [0, 2 ** depth - 1, 0],
                             [0, 0, 2 ** depth - 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert torch.equal(z_order_code(grid, depth), _z_order_bitwise(grid, depth))
    assert torch.equal(hilbert_code(grid, depth), _hilbert_bitwise(grid, depth))
    # bits above `depth` are ignored by both, as before
    high = grid + (5 << depth)
    assert torch.equal(hilbert_code(high, depth), _hilbert_bitwise(high, depth))
    assert torch.equal(z_order_code(high, depth), _z_order_bitwise(high, depth))


@pytest.mark.parametrize("fixed_depth", [None, 9, 12])
def test_codes_carried_through_poolings_and_subsets_equal_direct_encoding(fixed_depth):
    """A view encoded once (CurveCodes) gives, at every stage of PTv3 and for an indexed subset of its voxels
    (a student view), exactly the codes and orders that encoding each stage's grid coordinates gives."""
    from dataclasses import replace

    from dos.models import ptv3_from_config

    net = ptv3_from_config("smoke", in_channels=6, serialization_depth=fixed_depth, shuffle_orders=False).eval()
    point = random_batch([700, 500, 260], [(40, 30, 9), (60, 8, 20), (17, 17, 17)], seed=3)
    subset = torch.sort(torch.randperm(point.num_points, generator=torch.Generator().manual_seed(1))[:900]).values
    sub_counts = torch.bincount(point.batch[subset], minlength=point.num_clouds)
    sub = Point(coord=point.coord[subset], feat=point.feat[subset], grid_coord=point.grid_coord[subset],
                offset=torch.cumsum(sub_counts, 0))
    curves = net.encode_curves(point.grid_coord)
    assert curves is not None
    with torch.no_grad():
        for given, carried in ((point, curves), (sub, curves.select(subset))):
            direct = net(replace(given, curves=None)).stages
            derived = net(replace(given, curves=carried)).stages
            assert [s.curves is not None for s in derived] == [True] * len(derived)
            for a, b in zip(direct, derived):
                assert a.depth == b.depth
                assert torch.equal(a.codes, b.codes) and torch.equal(a.order, b.order)
            # and against the bare encoders on each stage's own voxels
            for stage in derived:
                want = torch.stack([(stage.batch << 3 * stage.depth) | curve_code(stage.grid_coord, stage.depth, n)
                                    for n in stage.order_names])
                assert torch.equal(stage.codes, want)


def test_curves_are_not_carried_when_coordinates_exceed_the_fixed_depth():
    from dos.models import ptv3_from_config

    net = ptv3_from_config("smoke", in_channels=6, serialization_depth=4)
    assert net.encode_curves(torch.tensor([[15, 0, 3], [16, 1, 1]])) is None
    assert net.encode_curves(torch.tensor([[14, 0, 3], [2, 1, 1]])) is not None
