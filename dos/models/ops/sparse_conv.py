"""Sparse 3D convolution on voxel sets in pure PyTorch (spconv as an optional CUDA accelerator).

A convolution over active voxels is described by a neighbour map `index` [N_out, kvol]: index[o, k] is the
input row that output o reads through kernel offset k, or -1 when that voxel is empty. Then
    out[o] = sum_k x[index[o, k]] @ weight[k]          (weight: [kvol, C_in, C_out])
which `gather_conv` computes as one gather + one matmul per chunk of output rows (all kvol slots, empty ones
included; the strided convs use it), and `PlannedConv` (SubMConv3d) over the active pairs only, grouped by
offset (`PairPlan`, built once per voxel set): 2-5x less work where voxels have few neighbours.

Kernel offsets are enumerated x-major (x slowest, z fastest): k = (dx+r)*K*K + (dy+r)*K + (dz+r) for a
kernel of odd size K = 2r+1, and out(p) = sum_k W[k] in(p + d_k). This is what torch conv3d computes on a
dense [C, X, Y, Z] volume with weight[c_out, c_in, dx+r, dy+r, dz+r] (see `weight_to_dense`), and what
spconv computes with its [C_out, K, K, K, C_in] weight layout on indices (batch, x, y, z).

Voxel lookup hashes (batch, x, y, z) into one int64 key (mixed radix) and uses sort + searchsorted.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from dos.batching import take_rows

# Upper bound on the number of gathered elements (rows * kvol * C_in) materialised at once.
# Gathered columns per chunk. CPU: 8 MiB of float32 stays in cache, less memory and faster. CUDA: 256 MiB, so a
# conv is a few large matmuls (at 2^21 one PTv3 step launched ~90k kernels and the GPU sat idle 2/3 of the time).
CHUNK_ELEMENTS = 1 << 21
CUDA_CHUNK_ELEMENTS = 1 << 26


def _chunk_rows(x: Tensor, kvol: int, c_in: int) -> int:
    budget = CUDA_CHUNK_ELEMENTS if x.is_cuda else CHUNK_ELEMENTS
    return max(1, budget // max(1, kvol * c_in))


def kernel_offsets(kernel_size: int, device: torch.device | str = "cpu", centred: bool = True) -> Tensor:
    """[K^3, 3] int64 offsets, x-major. centred: in [-r, r] (odd K); otherwise in [0, K)."""
    if centred and kernel_size % 2 != 1:
        raise ValueError(f"a centred (submanifold) kernel needs an odd size, got {kernel_size}")
    r = kernel_size // 2 if centred else 0
    axis = torch.arange(kernel_size, device=device) - r
    return torch.cartesian_prod(axis, axis, axis).long()


def voxel_keys(grid_coord: Tensor, batch: Tensor) -> Tensor:
    """One int64 key per (batch, x, y, z) voxel, ordered by batch, then x, y, z (duplicates allowed)."""
    grid_coord, batch = grid_coord.long(), batch.long()
    if len(grid_coord) == 0:
        return batch.new_zeros(0)
    low, high = torch.aminmax(grid_coord, dim=0)
    size = (high - low + 1).tolist()
    g = grid_coord - low
    return ((batch * size[0] + g[:, 0]) * size[1] + g[:, 1]) * size[2] + g[:, 2]


class VoxelHash:
    """Exact lookup of (batch, x, y, z) voxels; coordinates may go `margin` beyond the stored range."""

    def __init__(self, grid_coord: Tensor, batch: Tensor, margin: int = 1):
        grid_coord, batch = grid_coord.long(), batch.long()
        if len(grid_coord):
            low, high = torch.aminmax(grid_coord, dim=0)
            # one host read for the box and the number of clouds
            extent = torch.cat([high - low + 1 + 2 * margin, batch.max().reshape(1) + 1]).tolist()
        else:
            low, extent = grid_coord.new_zeros(3), [1 + 2 * margin] * 3 + [1]
        self.low = low - margin
        self.size, num_batches = extent[:3], extent[3]
        if num_batches * self.size[0] * self.size[1] * self.size[2] >= 2 ** 63:
            raise ValueError("voxel grid too large to hash into int64; use a coarser grid")
        keys = self.keys(grid_coord, batch)
        self.sorted_keys, self.sort_index = torch.sort(keys)
        if len(keys) > 1 and bool((self.sorted_keys[1:] == self.sorted_keys[:-1]).any()):
            raise ValueError("duplicate voxels: sparse convolution needs one point per (batch, voxel); "
                             "grid-sample the cloud first")

    def keys(self, grid_coord: Tensor, batch: Tensor) -> Tensor:
        g = grid_coord.long() - self.low
        return ((batch.long() * self.size[0] + g[..., 0]) * self.size[1] + g[..., 1]) * self.size[2] + g[..., 2]

    def lookup(self, grid_coord: Tensor, batch: Tensor) -> Tensor:
        """Row index of each queried voxel, -1 where absent. Shapes: grid_coord [..., 3], batch [...]."""
        if len(self.sorted_keys) == 0:
            return torch.full(batch.shape, -1, dtype=torch.long, device=batch.device)
        g = grid_coord.long() - self.low
        inside = ((g >= 0) & (g < torch.tensor(self.size, device=g.device))).all(-1)
        query = self.keys(grid_coord, batch)
        pos = torch.searchsorted(self.sorted_keys, query).clamp_(max=len(self.sorted_keys) - 1)
        found = inside & (self.sorted_keys[pos] == query)
        return torch.where(found, self.sort_index[pos], torch.full_like(pos, -1))


def submanifold_neighbours(grid_coord: Tensor, batch: Tensor, kernel_size: int = 3) -> Tensor:
    """[N, K^3] neighbour map of a submanifold conv (outputs = inputs = the active voxels).

    With the hash's margin of K // 2 cells, every neighbour cell p + d lies inside the hashed box, so its key is
    the voxel's key plus a constant per offset (mixed radix, no wrap-around). The lookups run in sorted key
    order, so the binary searches of neighbouring rows walk the same part of the table; only half the offsets
    are searched, the other half is their mirror image.
    """
    grid_coord, batch = grid_coord.long(), batch.long()
    if len(grid_coord) == 0:
        return torch.full((0, kernel_size ** 3), -1, dtype=torch.long, device=grid_coord.device)
    table = VoxelHash(grid_coord, batch, margin=kernel_size // 2)
    _, size1, size2 = table.size
    r = kernel_size // 2
    kvol, half = kernel_size ** 3, kernel_size ** 3 // 2
    keys, n, device = table.sorted_keys, len(table.sorted_keys), grid_coord.device
    steps = range(-r, r + 1)  # x-major, as kernel_offsets: offset kvol-1-k is -d_k, offset `half` is 0
    offset_keys = torch.tensor([(dx * size1 + dy) * size2 + dz for dx in steps for dy in steps for dz in steps][:half],
                               device=device)
    # Voxels are searched (in sorted key order) for the first half of the offsets only: j = p + d_k is a
    # neighbour of p exactly when p = j + d_{kvol-1-k} is one of j's, which fills the second half.
    query = keys[:, None] + offset_keys[None, :]
    pos = torch.searchsorted(keys, query).clamp_(max=n - 1)
    found = keys[pos] == query
    by_position = torch.full((n, kvol), -1, dtype=torch.long, device=device)  # sorted position of each neighbour
    by_position[:, :half] = torch.where(found, pos, torch.full_like(pos, -1))
    by_position[:, half] = torch.arange(n, device=device)
    source, k = found.nonzero(as_tuple=True)
    by_position[pos[source, k], kvol - 1 - k] = source
    sorted_rows = torch.where(by_position >= 0, table.sort_index[by_position], by_position)
    index = torch.empty_like(sorted_rows)
    index[table.sort_index] = sorted_rows
    return index


def transpose_neighbours(index: Tensor, num_inputs: int) -> Tensor:
    """[N_in, kvol] map with t[index[o, k], k] = o, -1 elsewhere (each (input, k) must be used once)."""
    kvol = index.shape[1]
    transposed = torch.full((num_inputs, kvol), -1, dtype=torch.long, device=index.device)
    out_rows = torch.arange(index.shape[0], device=index.device)[:, None].expand_as(index)
    k_cols = torch.arange(kvol, device=index.device)[None].expand_as(index)
    valid = index >= 0
    used = torch.zeros(num_inputs * kvol, dtype=torch.long, device=index.device)
    flat = index[valid] * kvol + k_cols[valid]
    used.index_add_(0, flat, torch.ones_like(flat))
    if bool((used > 1).any()):
        raise ValueError("neighbour map is not transposable: an (input, offset) pair feeds two outputs")
    transposed[index[valid], k_cols[valid]] = out_rows[valid]
    return transposed


@dataclass
class NeighbourMap:
    """A conv's neighbour map with its transpose (used by the backward pass) and output voxels."""

    index: Tensor        # [N_out, kvol]
    transposed: Tensor   # [N_in, kvol]
    kernel_size: int
    grid_coord: Tensor   # [N_out, 3] output voxels
    batch: Tensor        # [N_out]
    _plan: "PairPlan | None" = None

    def plan(self) -> "PairPlan":
        """The PairPlan of `index` (built on first use, then shared by every conv on this voxel set)."""
        if self._plan is None:
            self._plan = pair_plan(self.index, self.transposed.shape[0])
        return self._plan

    def submanifold_subset(self, rows: Tensor | None, grid_coord: Tensor, batch: Tensor) -> NeighbourMap:
        """The submanifold map of a subset of this map's voxels, without a voxel search: rows[i] is the row here
        of voxel i of the subset (None: the same voxels, and this map, plan included, is returned).

        A voxel's neighbours within the subset are its neighbours here that belong to the subset, so the map is
        this one's rows `rows`, renumbered (non-members become -1). Only for submanifold maps (built by
        `submanifold`), whose transpose is the map with the offsets reversed.
        """
        if rows is None:
            return self
        renumber = torch.full((self.index.shape[0] + 1,), -1, dtype=torch.long, device=rows.device)
        renumber[rows] = torch.arange(len(rows), device=rows.device)
        index = renumber[self.index[rows]]  # -1 (no neighbour) reads renumber[-1] = -1
        return NeighbourMap(index=index, transposed=index.flip(1), kernel_size=self.kernel_size,
                            grid_coord=grid_coord.long(), batch=batch.long())

    @classmethod
    def submanifold(cls, grid_coord: Tensor, batch: Tensor, kernel_size: int = 3) -> NeighbourMap:
        index = submanifold_neighbours(grid_coord, batch, kernel_size)
        # For a centred kernel, input j reaches output j - d_k = j + d_{kvol-1-k}: the transpose is the
        # same map with the offsets reversed.
        return cls(index=index, transposed=index.flip(1), kernel_size=kernel_size,
                   grid_coord=grid_coord.long(), batch=batch.long())


@dataclass
class DownsampleMap:
    """Strided conv with kernel = stride (SPUNet's k=2 s=2 down-sampling) and its inverse.

    coarse voxel = fine voxel // stride (per cloud); index[c, k] = fine row at stride*c + d_k (d in [0,
    stride)^3, x-major), -1 if empty; parent[f] = coarse row of fine voxel f. The up-sampling (inverse
    conv) map is the transpose: up_index[f, k] = parent[f] for the one k with d_k = fine % stride.
    """

    index: Tensor            # [N_coarse, stride^3]
    up_index: Tensor         # [N_fine, stride^3]
    parent: Tensor           # [N_fine]
    coarse_grid_coord: Tensor
    coarse_batch: Tensor
    stride: int

    def down(self) -> NeighbourMap:
        return NeighbourMap(self.index, self.up_index, self.stride, self.coarse_grid_coord, self.coarse_batch)

    def up(self, fine_grid_coord: Tensor, fine_batch: Tensor) -> NeighbourMap:
        return NeighbourMap(self.up_index, self.index, self.stride, fine_grid_coord, fine_batch)


def downsample_map(grid_coord: Tensor, batch: Tensor, stride: int = 2) -> DownsampleMap:
    grid_coord, batch = grid_coord.long(), batch.long()
    coarse = torch.div(grid_coord, stride, rounding_mode="floor")
    sub = grid_coord - coarse * stride  # position inside the parent cell, in [0, stride)
    k = (sub[:, 0] * stride + sub[:, 1]) * stride + sub[:, 2]
    keys = voxel_keys(coarse, batch)
    unique_keys, parent = torch.unique(keys, sorted=True, return_inverse=True)
    num_coarse = len(unique_keys)
    first = torch.full((num_coarse,), len(keys), dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, parent, torch.arange(len(keys), device=keys.device), reduce="amin")
    index = torch.full((num_coarse, stride ** 3), -1, dtype=torch.long, device=keys.device)
    fine_rows = torch.arange(len(keys), device=keys.device)
    used = torch.zeros(num_coarse * stride ** 3, dtype=torch.long, device=keys.device)
    used.index_add_(0, parent * stride ** 3 + k, torch.ones_like(k))
    if bool((used > 1).any()):
        raise ValueError("duplicate voxels: strided conv needs one point per (batch, voxel)")
    index[parent, k] = fine_rows
    up_index = torch.full((len(keys), stride ** 3), -1, dtype=torch.long, device=keys.device)
    up_index[fine_rows, k] = parent
    return DownsampleMap(index=index, up_index=up_index, parent=parent, coarse_grid_coord=coarse[first],
                         coarse_batch=batch[first], stride=stride)


def _gather_matmul(x: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """sum_k x[index[:, k]] @ weight[k] with -1 reading a zero row; chunked over output rows."""
    kvol, c_in, c_out = weight.shape
    x_padded = torch.cat([x, x.new_zeros(1, c_in)])
    safe_index = torch.where(index >= 0, index, torch.full_like(index, x.shape[0]))
    flat_weight = weight.reshape(kvol * c_in, c_out)
    out = x.new_empty(index.shape[0], c_out)
    rows = _chunk_rows(x, kvol, c_in)
    for start in range(0, index.shape[0], rows):
        cols = torch.index_select(x_padded, 0, safe_index[start:start + rows].reshape(-1))
        out[start:start + rows] = cols.view(-1, kvol * c_in) @ flat_weight
    return out


def _weight_grad(x: Tensor, index: Tensor, grad_out: Tensor, kvol: int) -> Tensor:
    """sum_o x[index[o, k]]^T grad_out[o], as [kvol, C_in, C_out], chunked over output rows."""
    c_in = x.shape[1]
    x_padded = torch.cat([x, x.new_zeros(1, c_in)])
    safe_index = torch.where(index >= 0, index, torch.full_like(index, x.shape[0]))
    grad_w = x.new_zeros(kvol * c_in, grad_out.shape[1])
    rows = _chunk_rows(x, kvol, c_in)
    for start in range(0, index.shape[0], rows):
        cols = torch.index_select(x_padded, 0, safe_index[start:start + rows].reshape(-1))
        grad_w += cols.view(-1, kvol * c_in).T @ grad_out[start:start + rows]
    return grad_w.reshape(kvol, c_in, -1)


class GatherConv(torch.autograd.Function):
    """Gather-matmul sparse conv whose backward re-gathers instead of saving the [N, kvol*C_in] columns."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, weight: Tensor, transposed: Tensor) -> Tensor:
        ctx.save_for_backward(x, index, weight, transposed)
        return _gather_matmul(x, index, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, index, weight, transposed = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _gather_matmul(grad_out, transposed, weight.transpose(1, 2))
        if ctx.needs_input_grad[2]:
            grad_w = _weight_grad(x, index, grad_out, weight.shape[0])
        return grad_x, None, grad_w, None


class PairPlan:
    """The active (output, input) pairs of a neighbour map, grouped by kernel offset for batched products.

    Offsets with similar pair counts share a group, padded to the group's largest count (`padded_groups` picks
    the groups with the least padding; padding slots are never summed): a conv then costs one gather + one bmm
    per group instead of a gather of all kvol slots, most of them empty (a LiDAR voxel has 5-10 of its 27
    neighbours). Sums over each output's (or, in the
    backward pass, each input's) pairs go through segment sums in a fixed order: deterministic on every device.
    What only the backward pass needs (pairs by input, output rows per group) is built on first use: a
    no-grad teacher never pays for it.

    offsets[g] [G] kernel offsets of group g; in_rows[g] / out_rows[g] [G, M] the input / output row of each
    pair (padding slots: input row 0, output row num_outputs); by_output [P] the rows of the flattened group
    results sorted by output (output_lengths [num_outputs] pairs each); by_input, input_lengths the same by
    input row.
    """

    def __init__(self, index: Tensor, num_inputs: int, max_groups: int = 3):
        num_outputs, kvol = index.shape
        device = index.device
        valid = index >= 0
        # rank of each output among the pairs of its offset: running counts along the outputs, on the transposed
        # (contiguous) mask, in int32 (a strided int64 cumsum is 6x slower); the last column holds the counts
        running = torch.cumsum(valid.t().contiguous(), 1, dtype=torch.int32)  # [kvol, N_out]
        counts = running[:, -1].tolist() if num_outputs else [0] * kvol
        groups = padded_groups(counts, max_groups)
        # slot of pair (o, k) in the flattened group results: start of k's row in its group + rank of o in k's pairs
        row_start, self._spans, total = [0] * kvol, [], 0
        for group in groups:
            width = counts[group[0]]
            for j, k in enumerate(group):
                row_start[k] = total + j * width
            self._spans.append((total, len(group), width))
            total += len(group) * width
        out_idx, k_idx = valid.nonzero(as_tuple=True)  # row-major: sorted by output, then offset
        self.by_output = torch.tensor(row_start, device=device)[k_idx] + running[k_idx, out_idx] - 1
        self.output_lengths = valid.sum(1, dtype=torch.int32).long()  # an int64 sum casts the whole mask first
        self._in_idx = index[out_idx, k_idx]
        self._out_idx = out_idx
        # padding slots read input row 0 (their products are never summed) and output row num_outputs (a zero row
        # of the output gradient, see PlannedConv.backward)
        all_in = torch.zeros((total,), dtype=torch.long, device=device)
        all_in[self.by_output] = self._in_idx
        self.offsets = [torch.tensor(group, device=device) for group in groups]
        self.backward_targets = all_in  # input row of every slot, flattened over the groups
        self.in_rows = [all_in[a:a + g * w].view(g, w) for a, g, w in self._spans]
        self.num_inputs, self.num_outputs, self._total = num_inputs, num_outputs, total

    @cached_property
    def forward_targets(self) -> Tensor:
        """The output row of every slot, flattened over the groups (padding slots: num_outputs)."""
        all_out = torch.full((self._total,), self.num_outputs, dtype=torch.long, device=self.by_output.device)
        all_out[self.by_output] = self._out_idx
        return all_out

    @cached_property
    def out_rows(self) -> list[Tensor]:
        return [self.forward_targets[a:a + g * w].view(g, w) for a, g, w in self._spans]

    @cached_property
    def by_input(self) -> Tensor:
        return self.by_output[torch.sort(self._in_idx, stable=True).indices]

    @cached_property
    def input_lengths(self) -> Tensor:
        return torch.bincount(self._in_idx, minlength=self.num_inputs)


def padded_groups(counts: list[int], max_groups: int) -> list[list[int]]:
    """Offsets (indices of `counts`, the pairs of each) in at most `max_groups` groups, each padded to its largest
    count, with the fewest padded rows in total: the groups are runs of the offsets sorted by count, and the runs
    are chosen by dynamic programming (27 offsets, a few thousand steps of host arithmetic)."""
    order = [k for k in sorted(range(len(counts)), key=lambda k: -counts[k]) if counts[k] > 0]
    n = len(order)
    if n == 0:
        return []
    # cost[g][j]: fewest padded rows of the first j offsets in g groups; the group starting at i costs (j - i) x
    # count of offset i (the largest of the run)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    start = [[0] * (n + 1) for _ in range(max_groups + 1)]
    cost[0][0] = 0
    for g in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(g - 1, j):
                candidate = cost[g - 1][i] + (j - i) * counts[order[i]]
                if candidate < cost[g][j]:
                    cost[g][j], start[g][j] = candidate, i
    g = min(range(1, max_groups + 1), key=lambda g: (cost[g][n], g))
    groups, j = [], n
    while g > 0:
        i = start[g][j]
        groups.append(order[i:j])
        g, j = g - 1, i
    return groups[::-1]


def pair_plan(index: Tensor, num_inputs: int) -> PairPlan:
    """PairPlan of a neighbour map [N_out, kvol] (-1 = no input)."""
    return PairPlan(index, num_inputs)


def _planned_products(x: Tensor, rows: list[Tensor], weights: list[Tensor]) -> Tensor:
    """Flattened per-group products x[rows_g] @ weights_g ([sum_g G*M, C_out]), written in place.

    Padding slots read a real row: their products are never summed (the segment sums read the real pairs only).
    """
    c_out = weights[0].shape[2] if weights else 0
    out = x.new_empty(sum(r.numel() for r in rows), c_out)
    at = 0
    for r, w in zip(rows, weights):
        torch.bmm(take_rows(x, r), w, out=out[at:at + r.numel()].view(r.shape[0], r.shape[1], c_out))
        at += r.numel()
    return out


def _segment_sum(values: Tensor, order: Tensor, lengths: Tensor, num: int, channels: int) -> Tensor:
    if len(order) == 0:
        return values.new_zeros(num, channels)
    return torch.segment_reduce(take_rows(values, order), "sum", lengths=lengths, axis=0, unsafe=True)


def _sum_pairs(products: Tensor, targets: Tensor, order: Tensor, lengths: Tensor, num: int, channels: int
               ) -> Tensor:
    """Row sums of the flattened group products onto their `num` target rows.

    CPU: one index_add_ over the target row of every group slot, `targets` (padding slots land on a harmless row: the dump row
    `num` of the forward, or an input row that receives an exact zero product in the backward). It adds in slot
    order, one slot after another: deterministic, and twice as fast as gathering the products by target for a
    segment sum, which CUDA keeps (its index_add_ adds in a nondeterministic order).
    """
    if products.device.type != "cpu":
        return _segment_sum(products, order, lengths, num, channels)
    out = products.new_zeros(num + 1, channels)
    out.index_add_(0, targets, products)
    return out[:num]


class PlannedConv(torch.autograd.Function):
    """The sparse conv over a PairPlan: out = segment sums of the per-group products of the active pairs."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, plan: PairPlan) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        products = _planned_products(x, plan.in_rows, [weight[k] for k in plan.offsets])
        return _sum_pairs(products, plan.forward_targets, plan.by_output, plan.output_lengths, plan.num_outputs,
                          weight.shape[2])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        plan = ctx.plan
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        # the output rows of padding slots read this zero row, so padding adds nothing to the weight gradient
        g_padded = torch.cat([grad_out, grad_out.new_zeros(1, grad_out.shape[1])])
        if ctx.needs_input_grad[0]:
            products = _planned_products(g_padded, plan.out_rows, [weight[k].transpose(1, 2) for k in plan.offsets])
            grad_x = _sum_pairs(products, plan.backward_targets, plan.by_input, plan.input_lengths,
                                plan.num_inputs, weight.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight)
            for ks, ins, outs in zip(plan.offsets, plan.in_rows, plan.out_rows):
                grad_w[ks] = torch.bmm(take_rows(x, ins).transpose(1, 2), take_rows(g_padded, outs))
        return grad_x, grad_w, None


def gather_conv(x: Tensor, nbr: Tensor, weight: Tensor, nbr_transposed: Tensor | None = None) -> Tensor:
    """out[o] = sum_k x[nbr[o, k]] @ weight[k]; x [N_in, C_in], nbr [N_out, kvol], weight [kvol, C_in, C_out]."""
    if nbr_transposed is None:
        nbr_transposed = transpose_neighbours(nbr, x.shape[0])
    return GatherConv.apply(x, nbr, weight.to(x.dtype), nbr_transposed)


def weight_to_dense(weight: Tensor, kernel_size: int) -> Tensor:
    """[kvol, C_in, C_out] -> torch conv3d layout [C_out, C_in, K, K, K]."""
    kvol, c_in, c_out = weight.shape
    return weight.reshape(kernel_size, kernel_size, kernel_size, c_in, c_out).permute(4, 3, 0, 1, 2)


def weight_to_spconv(weight: Tensor, kernel_size: int) -> Tensor:
    """[kvol, C_in, C_out] -> spconv 2.x layout [C_out, K, K, K, C_in]."""
    kvol, c_in, c_out = weight.shape
    return weight.reshape(kernel_size, kernel_size, kernel_size, c_in, c_out).permute(4, 0, 1, 2, 3)


def spconv_available() -> bool:
    return importlib.util.find_spec("spconv") is not None


def _spconv_submanifold(x: Tensor, neighbours: NeighbourMap, weight: Tensor) -> Tensor:
    """The same submanifold conv through spconv (Native algorithm on CPU, spconv's default on CUDA)."""
    import spconv.pytorch as spconv  # optional accelerator
    from spconv.core import ConvAlgo

    k = neighbours.kernel_size
    c_in, c_out = weight.shape[1], weight.shape[2]
    indices = torch.cat([neighbours.batch[:, None], neighbours.grid_coord], 1).int().contiguous()
    spatial_shape = (neighbours.grid_coord.max(0).values + 1).tolist()
    tensor = spconv.SparseConvTensor(x, indices, spatial_shape, int(neighbours.batch.max()) + 1)
    algo = ConvAlgo.Native if not x.is_cuda else None
    kwargs = {"algo": algo} if algo is not None else {}
    conv = spconv.SubMConv3d(c_in, c_out, k, bias=False, **kwargs).to(device=x.device, dtype=x.dtype)
    params = {"weight": weight_to_spconv(weight, k).contiguous()}
    return torch.func.functional_call(conv, params, (tensor,)).features


def select_conv_backend(x: Tensor, backend: str = "auto") -> str:
    """"spconv" on CUDA when installed, else "torch"; an explicit backend is returned unchanged."""
    if backend == "auto":
        return "spconv" if x.is_cuda and spconv_available() else "torch"
    if backend not in ("torch", "spconv"):
        raise ValueError(f"unknown sparse conv backend {backend!r}; expected auto, torch or spconv")
    return backend


class SubMConv3d(nn.Module):
    """Submanifold sparse 3D convolution (outputs at the input voxels).

    weight: [K^3, C_in, C_out], kernel offsets x-major (see module docstring); bias: [C_out] or None.
    forward(x [N, C_in], neighbours: NeighbourMap built once per voxel set by NeighbourMap.submanifold).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True,
                 backend: str = "auto"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"SubMConv3d needs an odd kernel size, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(kernel_size ** 3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, neighbours: NeighbourMap) -> Tensor:
        if neighbours.kernel_size != self.kernel_size:
            raise ValueError(f"neighbour map is for kernel {neighbours.kernel_size}, conv has {self.kernel_size}")
        if select_conv_backend(x, self.backend) == "spconv":
            out = _spconv_submanifold(x, neighbours, self.weight.to(x.dtype))
        else:
            out = PlannedConv.apply(x, self.weight.to(x.dtype), neighbours.plan())
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, backend={self.backend!r}")


class SparseConv3d(nn.Module):
    """Strided sparse conv with kernel size = stride (SPUNet's k=2 s=2 down-sampling), no padding.

    Outputs are the coarse voxels fine // stride of a `DownsampleMap`; out(c) = sum_k W[k] in(stride*c + d_k)
    with d_k in [0, stride)^3, x-major. weight: [stride^3, C_in, C_out] (spconv's SparseConv3d(kernel_size=s,
    stride=s) holds the same kernel as [C_out, s, s, s, C_in]: `weight_to_spconv(weight, s)`).
    Pure torch (gather_conv) on every device.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, bias: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.weight = nn.Parameter(torch.empty(stride ** 3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, maps: DownsampleMap) -> Tensor:
        if maps.stride != self.stride:
            raise ValueError(f"down-sampling map has stride {maps.stride}, conv has {self.stride}")
        out = gather_conv(x, maps.index, self.weight, maps.up_index)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, bias={self.bias is not None}"


class SparseInverseConv3d(SparseConv3d):
    """The inverse (transposed) of a SparseConv3d: back from the coarse voxels of a `DownsampleMap` to its fine
    voxels, out(f) = W[k] in(f // stride) with d_k = f - stride * (f // stride). Same weight layout as
    SparseConv3d ([stride^3, C_in, C_out]; spconv's SparseInverseConv3d keeps it as [C_out, s, s, s, C_in])."""

    def forward(self, x: Tensor, maps: DownsampleMap) -> Tensor:
        if maps.stride != self.stride:
            raise ValueError(f"down-sampling map has stride {maps.stride}, conv has {self.stride}")
        out = gather_conv(x, maps.up_index, self.weight, maps.index)
        return out if self.bias is None else out + self.bias.to(out.dtype)
