"""Point Transformer V3, LayerNorm variant (Pointcept's PT-v3m2, the Sonata backbone), in pure PyTorch.

Network: Linear stem + LayerNorm + GELU -> encoder stages (stage s > 0 starts with grid pooling, stride 2)
of blocks -> optionally a decoder (grid unpooling + blocks) back to full resolution.

Block (pre-norm): x += CPE(x) where CPE = SubMConv3d(k=3) -> Linear -> LayerNorm;
x += DropPath(LayerScale(Attn(LN(x)))); x += DropPath(LayerScale(MLP(LN(x)))), MLP ratio 4 with GELU.
Attention runs in patches along a space-filling-curve order; as in Pointcept, the j-th block of a stage uses
order j % n_orders, and the orders are shuffled at every serialization (input and each pooling level).
The decoder at level s reuses the encoder's serialization and neighbour map of level s.

Grid pooling: voxels grouped by grid_coord // stride within each cloud (coarse voxels sorted by
(batch, x, y, z)), features Linear-projected then max-pooled, coordinates mean-pooled, then LayerNorm + GELU;
the coarse Point keeps `pooling_inverse` (fine -> coarse) and `pooling_parent`, and is re-serialised.
Unpooling: parent = proj_skip(parent) + proj(child)[pooling_inverse], each proj = Linear + LayerNorm + GELU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from dos.batching import take_rows
from dos.models.ops.attention import PatchLayout, build_patch_layout, patch_attention
from dos.models.ops.scatter import segment_max, segment_mean
from dos.models.ops.sparse_conv import NeighbourMap, SubMConv3d, voxel_keys
from dos.models.backbone import BackboneOutput, LayerIds
from dos.models.point import Point, batch_to_offset
from dos.models.serialization import ORDER_NAMES, CurveCodes, encode_curves, serialization_depth, serialize

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class DropPath(nn.Module):
    """Stochastic depth per point (row), as timm's DropPath on Pointcept's [N, C] features."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class LayerScale(nn.Module):
    def __init__(self, channels: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class MLP(nn.Module):
    def __init__(self, channels: int, hidden_channels: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden_channels)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_channels, channels)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SerializedAttention(nn.Module):
    """Multi-head attention inside patches of the point order `order_index` of the Point."""

    def __init__(self, channels: int, num_heads: int, order_index: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 backend: str = "auto"):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels {channels} not divisible by heads {num_heads}")
        self.num_heads, self.order_index = num_heads, order_index
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.attn_drop, self.backend = attn_drop, backend
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, point: Point, layout: PatchLayout) -> Tensor:
        n, c = x.shape
        order = point.order[self.order_index % len(point.order)]
        inverse = point.inverse[self.order_index % len(point.order)]
        qkv = self.qkv(x).view(n, 3, self.num_heads, c // self.num_heads)
        out = patch_attention(qkv, layout, scale=self.scale, dropout_p=self.attn_drop if self.training else 0.0,
                              backend=self.backend, order=order, inverse=inverse)
        return self.proj_drop(self.proj(out.reshape(n, c)))


class Block(nn.Module):
    def __init__(self, channels: int, num_heads: int, order_index: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, drop_path: float = 0.0, layer_scale: float | None = None,
                 conv_backend: str = "auto", attn_backend: str = "auto"):
        super().__init__()
        self.cpe_conv = SubMConv3d(channels, channels, kernel_size=3, bias=True, backend=conv_backend)
        self.cpe_linear = nn.Linear(channels, channels)
        self.cpe_norm = nn.LayerNorm(channels)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SerializedAttention(channels, num_heads, order_index, qkv_bias, qk_scale, attn_drop,
                                        proj_drop, attn_backend)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio), proj_drop)
        self.ls1 = LayerScale(channels, layer_scale) if layer_scale is not None else nn.Identity()
        self.ls2 = LayerScale(channels, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, point: Point, neighbours: NeighbourMap, layout: PatchLayout) -> Tensor:
        x = x + self.cpe_norm(self.cpe_linear(self.cpe_conv(x, neighbours)))
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), point, layout)))
        x = x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
        return x


class GridPooling(nn.Module):
    """Stride-s voxel pooling: Linear, max over each coarse voxel, LayerNorm, GELU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = nn.LayerNorm(out_channels)
        self.act = nn.GELU()

    def forward(self, point: Point, subset: "PooledSubset | None" = None) -> Point:
        """subset: how these voxels' pooling follows from a reference pass over a superset of them on the same
        grid (`pooled_subset`); the voxel grouping is then read from it instead of sorted again."""
        if subset is None:
            coarse_grid = torch.div(point.grid_coord, self.stride, rounding_mode="floor")
            keys = voxel_keys(coarse_grid, point.batch)
            unique_keys, cluster = torch.unique(keys, sorted=True, return_inverse=True)
            num_coarse = len(unique_keys)
            first = torch.full((num_coarse,), point.num_points, dtype=torch.long, device=keys.device)
            first.scatter_reduce_(0, cluster, torch.arange(point.num_points, device=keys.device), reduce="amin")
            grid_coord, batch = coarse_grid[first], point.batch[first]
            levels = self.stride.bit_length() - 1
            curves = point.curves.pooled(first, levels) if point.curves is not None and self.stride == 1 << levels \
                else None  # curve codes are hierarchical for power-of-two strides only
        else:
            cluster, num_coarse = subset.cluster, subset.num_coarse
            grid_coord, batch, curves = subset.grid_coord, subset.batch, subset.curves
        feat = segment_max(self.proj(point.feat), cluster, num_coarse)
        coord = segment_mean(point.coord, cluster, num_coarse)
        return Point(coord=coord, feat=self.act(self.norm(feat)), grid_coord=grid_coord,
                     offset=batch_to_offset(batch, point.num_clouds), batch=batch,
                     grid_size=None if point.grid_size is None else point.grid_size * self.stride,
                     pooling_inverse=cluster, pooling_parent=point, curves=curves)


@dataclass
class PooledSubset:
    """The pooling of a voxel subset, read from the reference pass's pooling (see `pooled_subset`)."""

    cluster: Tensor          # [N_fine] coarse row of each fine voxel of the subset
    num_coarse: int
    rows: Tensor | None      # [num_coarse] row of each coarse voxel in the reference's coarse level (None: all)
    grid_coord: Tensor
    batch: Tensor
    curves: CurveCodes | None


def pooled_subset(reference: Point, rows: Tensor | None) -> PooledSubset:
    """Pooling of the voxels `rows` of reference.pooling_parent (None: all of them), where `reference` is the
    coarse Point pooled from it on the same grid with the same stride.

    A subset's coarse voxels are the reference's coarse voxels that hold one of its voxels, in the same
    (batch, x, y, z) order, so they are the reference's rows marked by a scatter, numbered by a cumulative sum.
    """
    if rows is None:
        return PooledSubset(reference.pooling_inverse, reference.num_points, None, reference.grid_coord,
                            reference.batch, reference.curves)
    coarse_of_fine = take_rows(reference.pooling_inverse, rows)
    present = torch.zeros(reference.num_points, dtype=torch.bool, device=rows.device)
    present[coarse_of_fine] = True
    coarse_rows = present.nonzero().squeeze(1)
    renumber = torch.cumsum(present, 0) - 1
    return PooledSubset(cluster=take_rows(renumber, coarse_of_fine), num_coarse=len(coarse_rows), rows=coarse_rows,
                        grid_coord=take_rows(reference.grid_coord, coarse_rows),
                        batch=take_rows(reference.batch, coarse_rows),
                        curves=None if reference.curves is None else reference.curves.select(coarse_rows))


class GridUnpooling(nn.Module):
    """parent = proj_skip(parent) + proj(child)[pooling_inverse]; each proj is Linear + LayerNorm + GELU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_channels, out_channels), nn.LayerNorm(out_channels), nn.GELU())
        self.proj_skip = nn.Sequential(nn.Linear(skip_channels, out_channels), nn.LayerNorm(out_channels),
                                       nn.GELU())

    def forward(self, child_feat: Tensor, pooling_inverse: Tensor, parent_feat: Tensor) -> Tensor:
        return self.proj_skip(parent_feat) + take_rows(self.proj(child_feat), pooling_inverse)


def _as_tuple(value: Any, length: int, name: str) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * length
    if len(values) != length:
        raise ValueError(f"{name} has {len(values)} entries, expected {length}")
    return values


class PointTransformerV3(nn.Module):
    def __init__(self, in_channels: int = 6, orders: Sequence[str] = ORDER_NAMES,
                 stride: Sequence[int] | int = 2,
                 enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
                 enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
                 enc_num_heads: Sequence[int] = (2, 4, 8, 16, 32),
                 enc_patch_size: Sequence[int] | int = 1024,
                 dec_depths: Sequence[int] = (2, 2, 2, 2),
                 dec_channels: Sequence[int] = (64, 64, 128, 256),
                 dec_num_heads: Sequence[int] = (4, 4, 8, 16),
                 dec_patch_size: Sequence[int] | int = 1024,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, drop_path: float = 0.3,
                 layer_scale: float | None = None, shuffle_orders: bool = True, enc_mode: bool = True,
                 serialization_depth: int | None = None,
                 conv_backend: str = "auto", attn_backend: str = "auto"):
        super().__init__()
        num_stages = len(enc_depths)
        self.num_stages, self.enc_mode = num_stages, enc_mode
        self.orders = (orders,) if isinstance(orders, str) else tuple(orders)
        self.shuffle_orders = shuffle_orders
        # None: per batch from the largest grid coordinate (Pointcept). An int makes every cloud's curve
        # order, hence its output, independent of the other clouds of its batch (Hilbert codes depend on depth).
        self.serialization_depth = serialization_depth
        self.strides = _as_tuple(stride, num_stages - 1, "stride")
        enc_channels = _as_tuple(enc_channels, num_stages, "enc_channels")
        enc_num_heads = _as_tuple(enc_num_heads, num_stages, "enc_num_heads")
        self.enc_patch_size = _as_tuple(enc_patch_size, num_stages, "enc_patch_size")
        self.enc_channels = enc_channels
        block_args = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                          proj_drop=proj_drop, layer_scale=layer_scale, conv_backend=conv_backend,
                          attn_backend=attn_backend)

        self.embedding = nn.Sequential(nn.Linear(in_channels, enc_channels[0]), nn.LayerNorm(enc_channels[0]),
                                       nn.GELU())
        rates = torch.linspace(0, drop_path, sum(enc_depths)).tolist()
        self.pools = nn.ModuleList()
        self.enc_stages = nn.ModuleList()
        for s in range(num_stages):
            if s > 0:
                self.pools.append(GridPooling(enc_channels[s - 1], enc_channels[s], self.strides[s - 1]))
            stage_rates = rates[sum(enc_depths[:s]):sum(enc_depths[:s + 1])]
            self.enc_stages.append(nn.ModuleList(
                Block(enc_channels[s], enc_num_heads[s], order_index=j % len(self.orders),
                      drop_path=stage_rates[j], **block_args) for j in range(enc_depths[s])))

        self.unpools = nn.ModuleList()
        self.dec_stages = nn.ModuleList()
        if not enc_mode:
            dec_channels = _as_tuple(dec_channels, num_stages - 1, "dec_channels")
            self.dec_channels = dec_channels
            dec_num_heads = _as_tuple(dec_num_heads, num_stages - 1, "dec_num_heads")
            _as_tuple(dec_depths, num_stages - 1, "dec_depths")
            self.dec_patch_size = _as_tuple(dec_patch_size, num_stages - 1, "dec_patch_size")
            rates = torch.linspace(0, drop_path, sum(dec_depths)).tolist()
            out_channels = list(dec_channels) + [enc_channels[-1]]
            # Index s of unpools/dec_stages is decoder level s (built coarse to fine, stored fine first).
            for s in range(num_stages - 1):
                stage_rates = rates[sum(dec_depths[:s]):sum(dec_depths[:s + 1])][::-1]
                self.unpools.append(GridUnpooling(out_channels[s + 1], enc_channels[s], out_channels[s]))
                self.dec_stages.append(nn.ModuleList(
                    Block(out_channels[s], dec_num_heads[s], order_index=j % len(self.orders),
                          drop_path=stage_rates[j], **block_args) for j in range(dec_depths[s])))
            self.out_channels = out_channels[0]
        else:
            self.out_channels = enc_channels[-1]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, SubMConv3d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _serialize(self, point: Point, generator: torch.Generator | None) -> Point:
        # orders are shuffled in training only: inference is deterministic
        return serialize(point, self.orders, depth=self.serialization_depth,
                         shuffle=self.shuffle_orders and self.training, generator=generator, curves=point.curves)

    def encode_curves(self, grid_coord: Tensor) -> CurveCodes | None:
        """The CurveCodes of a view's finest voxels, which serve every stage (and, indexed, any subset of the
        voxels on the same grid, such as a student view); None when the coordinates exceed the fixed depth
        (the per-stage encoders then drop the high bits as before) or are negative (serialize reports that)."""
        if grid_coord.numel() == 0:
            return None
        needed = serialization_depth(grid_coord)
        depth = self.serialization_depth if self.serialization_depth is not None else needed
        return encode_curves(grid_coord, depth, self.orders) if needed <= depth else None

    def layer_ids(self) -> LayerIds:
        """Layer-wise lr decay depth: the stem (embedding) is layer 0, the b-th block of the whole encoder is
        layer b + 1, and a pooling layer shares the id of the first block after it."""
        first_block = [1 + sum(len(stage) for stage in self.enc_stages[:s]) for s in range(len(self.enc_stages))]
        layers = [(0, self.embedding)]
        for s, stage in enumerate(self.enc_stages):
            layers += [(first_block[s] + i, block) for i, block in enumerate(stage)]
        layers += [(first_block[k + 1], pool) for k, pool in enumerate(self.pools)]
        return LayerIds.from_modules(layers, num_layers=first_block[-1] + len(self.enc_stages[-1]))

    def forward(self, point: Point, token_mask: Tensor | None = None, mask_token: Tensor | None = None,
                generator: torch.Generator | None = None, reference: BackboneOutput | None = None,
                reference_rows: Tensor | None = None) -> BackboneOutput:
        """Run the network; the input Point is not modified.

        token_mask [N] bool with mask_token [C0]: features of masked points are replaced by mask_token right
        after the stem. generator: RNG for the order shuffling (global RNG when None). point.curves, when
        given, are the CurveCodes of point.grid_coord (`encode_curves`); otherwise they are computed here.
        reference: the output of a pass over a superset of these voxels on the same grid (the teacher's view,
        for a student's subset of it), with reference_rows [N] the row of each voxel in its input (None: the
        same voxels). Neighbour maps and poolings then follow from the reference's, without a voxel search.
        """
        feat = self.embedding(point.feat)
        if token_mask is not None:
            if mask_token is None:
                raise ValueError("token_mask given without mask_token")
            feat = torch.where(token_mask[:, None], mask_token.reshape(1, -1).to(feat.dtype), feat)
        curves = point.curves if point.curves is not None else self.encode_curves(point.grid_coord)
        current = self._serialize(replace(point, feat=feat, codes=None, order=None, inverse=None, curves=curves),
                                  generator)
        rows = reference_rows
        if reference is not None:
            expected = reference.stages[0].num_points if rows is None else len(rows)
            if len(reference.neighbour_maps) != self.num_stages or expected != point.num_points:
                raise ValueError(f"reference pass does not match: {len(reference.neighbour_maps)} stages for "
                                 f"{self.num_stages}, {expected} voxels for {point.num_points}")

        stages: list[Point] = []
        neighbour_maps: list[NeighbourMap] = []
        for s in range(self.num_stages):
            if s > 0:
                subset = None
                if reference is not None:
                    subset = pooled_subset(reference.stages[s], rows)
                    rows = subset.rows
                current = self._serialize(self.pools[s - 1](current, subset), generator)
            if reference is None:
                neighbours = NeighbourMap.submanifold(current.grid_coord, current.batch, kernel_size=3)
            else:
                neighbours = reference.neighbour_maps[s].submanifold_subset(rows, current.grid_coord, current.batch)
            layout = build_patch_layout(current.counts, self.enc_patch_size[s])
            feat = current.feat
            for block in self.enc_stages[s]:
                feat = block(feat, current, neighbours, layout)
            current = replace(current, feat=feat)  # the next pooling records this as its parent
            stages.append(current)
            neighbour_maps.append(neighbours)
        if self.enc_mode:
            return BackboneOutput(stages=stages, neighbour_maps=neighbour_maps)

        feat = stages[-1].feat
        for s in range(self.num_stages - 2, -1, -1):
            parent = stages[s]
            feat = self.unpools[s](feat, stages[s + 1].pooling_inverse, parent.feat)
            layout = build_patch_layout(parent.counts, self.dec_patch_size[s])
            for block in self.dec_stages[s]:
                feat = block(feat, parent, neighbour_maps[s], layout)
        return BackboneOutput(stages=stages, decoded=replace(stages[0], feat=feat), neighbour_maps=neighbour_maps)


def load_ptv3_config(name_or_path: str | Path) -> dict[str, Any]:
    """Read a PTv3 config: a name ("paper", "mini", "smoke") from dos/models/configs or a YAML path."""
    from dos.models.configs import load_model_config

    return load_model_config("ptv3", name_or_path)


def ptv3_from_config(name_or_path: str | Path, in_channels: int | None = None, **overrides: Any
                     ) -> PointTransformerV3:
    """Build PointTransformerV3 from a config; keyword overrides win over the file."""
    config = load_ptv3_config(name_or_path)
    if in_channels is not None:
        config["in_channels"] = in_channels
    config.update(overrides)
    return PointTransformerV3(**config)
