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
* Hierarchy (`CurveCodes`): the curves are self-similar, so the codes of a voxel set pooled by stride 2^s
  follow from those of the fine voxels without re-encoding. z-order: Z(p >> s) = Z(p) >> 3s. Hilbert: a
  zero leading bit level applies the axis rotation sigma(x, y, z) = (z, x, y), so H_{d+k}(q) = H_d(sigma^k q)
  for q < 2^d, and H_D(p) >> 3s = H_{D-s}(p >> s); hence H_{D'}(p >> s) = H_D(sigma^k p) >> 3s with
  k = (D' - D + s) mod 3 (sigma^3 = id), whatever depth D' the coarse level is serialized at. So each view is
  encoded once, at its finest level, with three rotations per Hilbert curve.

Everything is vectorized over points; both curves are computed by table lookups over chunks of 4 bits per
axis (a handful of tensor operations per chunk instead of a dozen per bit), identical to the bit-by-bit
definitions above (tests/models/test_serialization.py keeps those as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dos.models.point import Point

ORDER_NAMES = ("z", "z-trans", "hilbert", "hilbert-trans")
MAX_CODE_BITS = 63


CHUNK_BITS = 4  # bits per axis consumed by one table lookup (tables of 2^(3*4) entries per state)


def _morton_table(bits: int) -> "np.ndarray":
    """MORTON[(x << 2b) | (y << b) | z] = the 3b-bit interleave of b-bit x, y, z (x most significant)."""
    import numpy as np

    index = np.arange(1 << (3 * bits), dtype=np.int64)
    x, y, z = index >> (2 * bits), (index >> bits) & ((1 << bits) - 1), index & ((1 << bits) - 1)
    code = np.zeros_like(index)
    for bit in range(bits):
        code |= ((x >> bit) & 1) << (3 * bit + 2) | ((y >> bit) & 1) << (3 * bit + 1) | ((z >> bit) & 1) << (3 * bit)
    return code


def _hilbert_level_table() -> tuple["np.ndarray", "np.ndarray"]:
    """Skilling's transform as a state machine over one bit level.

    The operations of a level touch only the lower bits of the axes, and each one (invert axis 0, swap axis 0
    with another) acts alike on every lower bit. So what the higher levels did to a lower bit is a signed
    permutation of the axes: axis d now holds original axis perm[d], inverted when flip[d]. That is the state
    (48 of them). For a state and the three original bits (x, y, z) of a level, the table gives the three Gray
    bits the level emits (x most significant) and the state for the next level down.
    """
    import itertools

    import numpy as np

    perms = list(itertools.permutations(range(3)))
    states = [(perm, flips) for perm in perms for flips in itertools.product((0, 1), repeat=3)]
    state_id = {state: i for i, state in enumerate(states)}
    gray = np.zeros((len(states), 8), dtype=np.int64)
    nxt = np.zeros((len(states), 8), dtype=np.int64)
    for s, (perm, flips) in enumerate(states):
        for bits in range(8):
            original = ((bits >> 2) & 1, (bits >> 1) & 1, bits & 1)
            level = [original[perm[d]] ^ flips[d] for d in range(3)]  # this level's bits, as transformed so far
            lower = [(perm[d], flips[d]) for d in range(3)]            # what the lower bits of axis d hold
            for dim in range(3):
                if level[dim]:
                    lower[0] = (lower[0][0], lower[0][1] ^ 1)          # invert the lower bits of axis 0
                else:
                    lower[0], lower[dim] = lower[dim], lower[0]        # exchange axis 0 and axis dim
            gray[s, bits] = (level[0] << 2) | (level[1] << 1) | level[2]
            nxt[s, bits] = state_id[(tuple(p for p, _ in lower), tuple(f for _, f in lower))]
    return gray, nxt


def _hilbert_chunk_table(levels: int) -> tuple["np.ndarray", "np.ndarray"]:
    """`levels` bit levels at once: index (state << 3L) | (x << 2L) | (y << L) | z, with L-bit x, y, z
    (most significant level first) -> the 3L Gray bits emitted and the state after the last level."""
    import numpy as np

    gray1, next1 = _hilbert_level_table()
    num_states = gray1.shape[0]
    index = np.arange(num_states << (3 * levels), dtype=np.int64)
    state = index >> (3 * levels)
    mask = (1 << levels) - 1
    x, y, z = (index >> (2 * levels)) & mask, (index >> levels) & mask, index & mask
    gray = np.zeros_like(index)
    for level in range(levels - 1, -1, -1):
        bits = ((x >> level) & 1) << 2 | ((y >> level) & 1) << 1 | ((z >> level) & 1)
        gray |= gray1[state, bits] << (3 * level)
        state = next1[state, bits]
    return gray, state


_TABLES: dict[tuple[str, int, str], Tensor] = {}


def _table(kind: str, levels: int, device: torch.device) -> Tensor:
    """Lookup tables as int64 tensors, built once per (kind, levels, device)."""
    key = (kind, levels, str(device))
    if key not in _TABLES:
        if kind == "morton":
            array = _morton_table(levels)
        else:
            gray, state = _hilbert_chunk_table(levels)
            array = gray if kind == "hilbert_gray" else state
        _TABLES[key] = torch.from_numpy(array).to(device)
    return _TABLES[key]


def _chunks(depth: int) -> list[tuple[int, int]]:
    """(lowest bit, number of bits) of each chunk, most significant first; the top chunk may be shorter."""
    out = []
    low = depth
    while low > 0:
        bits = min(CHUNK_BITS, low - (low - 1) // CHUNK_BITS * CHUNK_BITS) if not out else CHUNK_BITS
        low -= bits
        out.append((low, bits))
    return out


def _chunk_index(x: Tensor, y: Tensor, z: Tensor, low: int, bits: int) -> Tensor:
    mask = (1 << bits) - 1
    return ((((x >> low) & mask) << (2 * bits)) | (((y >> low) & mask) << bits)) | ((z >> low) & mask)


def z_order_code(grid_coord: Tensor, depth: int) -> Tensor:
    """Morton code of int64 [N, 3] grid coordinates using `depth` bits per axis (table lookups, 4 bits a time)."""
    x, y, z = (grid_coord[:, i].long() for i in range(3))
    code = torch.zeros_like(x)
    for low, bits in _chunks(depth):
        code |= _table("morton", bits, x.device)[_chunk_index(x, y, z, low, bits)] << (3 * low)
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
    """3D Hilbert index (Skilling's transform) of int64 [N, 3] grid coordinates, `depth` bits per axis.

    The transform runs as a state machine (`_hilbert_level_table`) over chunks of 4 bit levels, most
    significant first, one table lookup per chunk for the Gray bits and one for the next state.
    """
    x, y, z = (grid_coord[:, i].long() for i in range(3))
    gray = torch.zeros_like(x)
    state = None
    for low, bits in _chunks(depth):
        index = _chunk_index(x, y, z, low, bits)
        if state is not None:
            index = index | (state << (3 * bits))
        gray |= _table("hilbert_gray", bits, x.device)[index] << (3 * low)
        state = _table("hilbert_state", bits, x.device)[index]
    return _gray_to_binary(gray, 3 * depth)


def curve_code(grid_coord: Tensor, depth: int, order: str) -> Tensor:
    """Curve code (without the batch bits) for one of ORDER_NAMES."""
    if order not in ORDER_NAMES:
        raise ValueError(f"unknown serialization order {order!r}; expected one of {ORDER_NAMES}")
    if order.endswith("-trans"):
        grid_coord = grid_coord[:, [1, 0, 2]]
    return z_order_code(grid_coord, depth) if order.startswith("z") else hilbert_code(grid_coord, depth)


_ROTATION = [2, 0, 1]  # sigma: (x, y, z) -> (z, x, y), as grid_coord columns


@dataclass(frozen=True)
class CurveCodes:
    """Curve codes of a voxel set, from which every coarser pooling's codes follow (see the module docstring).

    rows[name] lists the rows of `base` holding curve `name` of the fine voxels at `depth`: one for z-order
    curves, three (rotations sigma^0, sigma^1, sigma^2 of the coordinates) for Hilbert curves. `shift` is the
    number of stride-2 levels pooled since; `base[:, i]` is the fine code of one of voxel i's children.
    """

    base: Tensor                           # [rows, N] int64
    rows: dict[str, tuple[int, ...]]
    depth: int
    shift: int = 0

    def select(self, index: Tensor) -> "CurveCodes":
        """The codes of the voxels `index` (a subset on the same grid, or one child per pooled voxel)."""
        return CurveCodes(self.base[:, index], self.rows, self.depth, self.shift)

    def pooled(self, first_child: Tensor, levels: int) -> "CurveCodes":
        """Codes of the voxels pooled by stride 2^levels; first_child[i] is one fine voxel of coarse voxel i."""
        return CurveCodes(self.base[:, first_child], self.rows, self.depth, self.shift + levels)

    def code(self, order: str, depth: int) -> Tensor:
        """Curve code of these voxels for `order`, serialized at `depth` bits per axis."""
        if order not in self.rows:
            raise ValueError(f"no {order!r} codes were computed (have {tuple(self.rows)})")
        rows = self.rows[order]
        row = rows[(depth - self.depth + self.shift) % 3] if len(rows) == 3 else rows[0]
        return self.base[row] >> (3 * self.shift)


def encode_curves(grid_coord: Tensor, depth: int, orders: tuple[str, ...] | list[str] = ORDER_NAMES
                  ) -> CurveCodes:
    """CurveCodes of every order in `orders`: one z-order and one Hilbert encoder call over stacked coordinates.
    The grid coordinates must fit in `depth` bits (bits above it would be dropped from the fine codes only)."""
    grid_coord = grid_coord.long()
    n = grid_coord.shape[0]
    z_inputs, h_inputs, rows = [], [], {}
    for name in dict.fromkeys(orders):
        if name not in ORDER_NAMES:
            raise ValueError(f"unknown serialization order {name!r}; expected one of {ORDER_NAMES}")
        coord = grid_coord[:, [1, 0, 2]] if name.endswith("-trans") else grid_coord
        if name.startswith("z"):
            rows[name] = (len(z_inputs),)
            z_inputs.append(coord)
        else:
            rows[name] = tuple(range(len(h_inputs), len(h_inputs) + 3))
            h_inputs += [coord, coord[:, _ROTATION], coord[:, _ROTATION][:, _ROTATION]]
    parts = []
    if z_inputs:
        parts.append(z_order_code(torch.cat(z_inputs), depth).view(len(z_inputs), n))
    if h_inputs:
        parts.append(hilbert_code(torch.cat(h_inputs), depth).view(len(h_inputs), n))
        rows = {k: v if len(v) == 1 else tuple(len(z_inputs) + r for r in v) for k, v in rows.items()}
    return CurveCodes(torch.cat(parts), rows, depth)


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
              shuffle: bool = False, generator: torch.Generator | None = None,
              curves: CurveCodes | None = None) -> Point:
    """Fill point.codes/order/inverse/depth/order_names (in place; returns the point).

    With shuffle=True the rows (curves) are permuted with torch.randperm(generator=generator), as
    Pointcept shuffles its orders at every serialization. When `curves` (the voxels' CurveCodes) is given, the
    codes are read from it instead of encoding the grid coordinates: the same codes, without the encoder.
    """
    if depth is None:
        depth = serialization_depth(point.grid_coord)
    check_code_fits(depth, point.num_clouds, point.grid_size)
    orders = tuple(orders)
    if shuffle:
        perm = torch.randperm(len(orders), generator=generator).tolist()
        orders = tuple(orders[i] for i in perm)
    batch_bits = point.batch.long() << (3 * depth)
    codes = torch.stack([batch_bits | (curves.code(name, depth) if curves is not None
                                       else curve_code(point.grid_coord, depth, name)) for name in orders])
    order = torch.argsort(codes, dim=1)
    inverse = torch.empty_like(order)
    positions = torch.arange(codes.shape[1], device=codes.device).expand_as(order)
    inverse.scatter_(1, order, positions)
    point.codes, point.order, point.inverse = codes, order, inverse
    point.depth, point.order_names = depth, orders
    return point
