"""Space-filling-curve serialization of voxel grids (z-order, Hilbert, and their xy-transposed variants).

Conventions, checked against Pointcept (pointcept/models/utils/serialization/{z_order,hilbert,default}.py)
so that point orders match theirs exactly for the same grid coordinates:

* z-order (Morton): bit i of x, y, z goes to code bits 3i+2, 3i+1, 3i; x is the most significant axis of
  every 3-bit group, z the least. Independent of `depth` as long as coordinates fit in `depth` bits.
* Hilbert: Skilling's (2004) "axes to transpose" transform applied to the `depth`-bit coordinates, walking
  bits from the most significant one and, within a bit, axes x, y, z in turn: when that axis's bit is set,
  the lower bits of x are inverted; when it is clear, the lower bits of x and of that axis are swapped. The
  transformed bits are interleaved MSB first with x most significant (like z-order), and the resulting
  3*depth-bit Gray code is converted to binary (prefix XOR from the top bit). The code depends on `depth`
  (leading zero bits permute the axes), so `depth` must be the same as Pointcept's to get the same curve.
* "-trans" variants swap x and y before encoding.
* depth = bit_length(max grid coordinate over the whole batch + 1); code = batch << (3*depth) | curve code,
  and 3*depth + bit_length(number of clouds) must be <= 63 (Pointcept asserts the same and also depth <= 16;
  our encoders have no 16-bit limit).
* order = argsort(code) per curve, inverse = its inverse permutation.

Everything is vectorized over points; Python loops run only over bits and axes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dos.models.point import Point

ORDER_NAMES = ("z", "z-trans", "hilbert", "hilbert-trans")
MAX_CODE_BITS = 63


def z_order_code(grid_coord: Tensor, depth: int) -> Tensor:
    """Morton code of int64 [N, 3] grid coordinates using `depth` bits per axis."""
    x, y, z = (grid_coord[:, i].long() for i in range(3))
    code = torch.zeros_like(x)
    for bit in range(depth):
        code |= ((x >> bit) & 1) << (3 * bit + 2)
        code |= ((y >> bit) & 1) << (3 * bit + 1)
        code |= ((z >> bit) & 1) << (3 * bit)
    return code


def _gray_to_binary(gray: Tensor, num_bits: int) -> Tensor:
    """Inverse Gray code of a num_bits-wide integer: prefix XOR from the most significant bit."""
    binary = gray.clone()
    shift = 1
    while shift < num_bits:
        binary ^= binary >> shift
        shift *= 2
    return binary


def hilbert_code(grid_coord: Tensor, depth: int) -> Tensor:
    """3D Hilbert index (Skilling's transform) of int64 [N, 3] grid coordinates, `depth` bits per axis."""
    axes = [grid_coord[:, i].long().clone() for i in range(3)]
    for level in range(depth - 1, -1, -1):  # most significant bit first
        lower = (1 << level) - 1  # mask of the bits below this one
        for dim in range(3):
            bit_set = ((axes[dim] >> level) & 1).bool()
            # bit set: invert the lower bits of axis 0
            axes[0] = torch.where(bit_set, axes[0] ^ lower, axes[0])
            # bit clear: exchange the lower bits of axis 0 and axis `dim`
            swap = torch.where(bit_set, torch.zeros_like(axes[0]), (axes[0] ^ axes[dim]) & lower)
            axes[dim] = axes[dim] ^ swap
            axes[0] = axes[0] ^ swap
    gray = z_order_code(torch.stack(axes, dim=1), depth)  # interleave, x most significant
    return _gray_to_binary(gray, 3 * depth)


def curve_code(grid_coord: Tensor, depth: int, order: str) -> Tensor:
    """Curve code (without the batch bits) for one of ORDER_NAMES."""
    if order not in ORDER_NAMES:
        raise ValueError(f"unknown serialization order {order!r}; expected one of {ORDER_NAMES}")
    if order.endswith("-trans"):
        grid_coord = grid_coord[:, [1, 0, 2]]
    return z_order_code(grid_coord, depth) if order.startswith("z") else hilbert_code(grid_coord, depth)


def serialization_depth(grid_coord: Tensor) -> int:
    """Bits per axis, as Pointcept: bit_length(max grid coordinate + 1)."""
    if grid_coord.numel() == 0:
        return 1
    if int(grid_coord.min()) < 0:
        raise ValueError("grid coordinates must be non-negative to serialize")
    return int(int(grid_coord.max()) + 1).bit_length()


def check_code_fits(depth: int, num_clouds: int, grid_size: float | None = None) -> None:
    """Raise a ValueError naming a grid size (or a number of clouds) that fits in 63 bits."""
    batch_bits = int(num_clouds).bit_length()
    if 3 * depth + batch_bits <= MAX_CODE_BITS:
        return
    max_depth = (MAX_CODE_BITS - batch_bits) // 3
    factor = 2 ** (depth - max_depth)
    extent_cells = 2 ** (depth - 1)  # the largest grid coordinate + 1 is at least this
    if grid_size is not None:
        grid_hint = f"a grid size of at least {grid_size * factor:g} m (now {grid_size:g} m)"
    else:
        grid_hint = f"a grid at least {factor}x coarser"
    max_clouds = 2 ** (MAX_CODE_BITS - 3 * depth) - 1 if 3 * depth < MAX_CODE_BITS else 0
    clouds_hint = (f", or at most {max_clouds} clouds per batch" if max_clouds >= 1
                   else " (no batch size fits at this depth)")
    raise ValueError(
        f"serialization code overflow: {extent_cells}+ cells per axis need depth {depth} "
        f"(3*{depth} bits) plus {batch_bits} bits for {num_clouds} clouds > {MAX_CODE_BITS} bits; "
        f"use {grid_hint}{clouds_hint}")


def serialize(point: Point, orders: tuple[str, ...] | list[str] = ORDER_NAMES, depth: int | None = None,
              shuffle: bool = False, generator: torch.Generator | None = None) -> Point:
    """Fill point.codes/order/inverse/depth/order_names (in place; returns the point).

    With shuffle=True the rows (curves) are permuted with torch.randperm(generator=generator), as
    Pointcept shuffles its orders at every serialization.
    """
    if depth is None:
        depth = serialization_depth(point.grid_coord)
    check_code_fits(depth, point.num_clouds, point.grid_size)
    orders = tuple(orders)
    if shuffle:
        perm = torch.randperm(len(orders), generator=generator).tolist()
        orders = tuple(orders[i] for i in perm)
    batch_bits = point.batch.long() << (3 * depth)
    codes = torch.stack([batch_bits | curve_code(point.grid_coord, depth, name) for name in orders])
    order = torch.argsort(codes, dim=1)
    inverse = torch.empty_like(order)
    positions = torch.arange(codes.shape[1], device=codes.device).expand_as(order)
    inverse.scatter_(1, order, positions)
    point.codes, point.order, point.inverse = codes, order, inverse
    point.depth, point.order_names = depth, orders
    return point
