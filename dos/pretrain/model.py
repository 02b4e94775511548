"""The DOS pretraining model: student encoder + head + prototypes, their EMA teacher, and the loss of one batch.

The encoder is any module with this contract (`dos.pretrain.encoder.PTv3Encoder` adapts PTv3):
    encoder(coord, feat, grid_coord, offset, token_mask=None, mask_token=None) -> EncoderOutput
where EncoderOutput.unit_feat [M, C] are features of the supervision units (voxels of the supervision grid),
ordered by cloud, `point_to_unit` [N] gives each input point's unit and `unit_offset` [B] the units per cloud;
`embed_channels` is the width right after the stem (the mask token's size) and `out_channels` is C.
Optionally, `encoder.encode_curves(grid_coord)` returns the view's serialization codes, which the teacher and the
student (indexed) then take as `curves=` instead of encoding their voxels again; and an encoder with
`reuses_reference = True` takes the teacher's output as `reference=` (with `reference_rows=`, the student's rows
in the view), so the student's neighbour maps and poolings are read from the teacher's instead of searched.

Loss of a batch of B samples (2B views): for each student view a, L_a = (L_same + L_cross) / 2 and
L = L_1 + L_2 (paper, Eq. for L_a), i.e. the mean over the 2B student clouds of the same-view loss plus that of
the cross-view loss; without cross-view supervision (Table 11), L = 2 x the same-view mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dos.batching import offset_to_batch, take_rows
from dos.objectives.sinkhorn import AllReduce
from dos.objectives.targets import TargetConfig, distillation_loss, prototype_logits
from dos.pretrain.diagnostics import effective_rank, softmap_entropy, usage_statistics
from dos.pretrain.batch import PretrainBatch
from dos.pretrain.heads import ProjectionHead, Prototypes
from dos.pretrain.matching import radius_nearest, same_view_pairs, scatter_mean
from dos.pretrain.student_input import MODES
from dos.pretrain.teacher import ema_update, make_teacher
from dos.config.ranges import check_ranges


@dataclass
class EncoderOutput:
    unit_feat: torch.Tensor      # [M, C]
    point_to_unit: torch.Tensor  # [N]
    unit_offset: torch.Tensor    # [B]
    backbone_output: object | None = None  # what a pass over a subset of these voxels may reuse (`reference=`)


@dataclass(frozen=True)
class DistillConfig:
    mode: str = "observable"          # observable | naive | token_jitter
    cross_view: bool = True
    cross_view_radius: float = 0.2    # metres, in the original frame (about one supervision voxel)
    head_hidden: int = 4096
    head_dim: int = 256
    num_prototypes: int = 1024

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"distill.mode must be one of {MODES}, got {self.mode!r}")
        check_ranges(self, positive=("cross_view_radius", "head_hidden", "head_dim", "num_prototypes"))


class DOSPretrainer(nn.Module):
    def __init__(self, encoder: nn.Module, distill: DistillConfig, target: TargetConfig):
        super().__init__()
        self.distill, self.target = distill, target
        self.student = nn.ModuleDict({
            "encoder": encoder,
            "head": ProjectionHead(encoder.out_channels, distill.head_hidden, distill.head_dim),
            "prototypes": Prototypes(distill.num_prototypes, distill.head_dim),
        })
        self.teacher = make_teacher(self.student).eval()
        self.mask_token = None
        if distill.mode != "observable":
            self.mask_token = nn.Parameter(torch.zeros(encoder.embed_channels))
            nn.init.trunc_normal_(self.mask_token, std=0.02)

    def train(self, mode: bool = True) -> "DOSPretrainer":
        super().train(mode)
        self.teacher.eval()  # targets without drop-path noise or order shuffling
        return self

    def backbone(self, which: str = "student") -> nn.Module:
        """The student's or the EMA teacher's backbone (what encoder.pt exports)."""
        return getattr(self, which)["encoder"].backbone

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        ema_update(self.teacher, self.student, momentum)

    def forward(self, batch: PretrainBatch, student_temp: float, teacher_temp: float,
                all_reduce: AllReduce | None = None, diagnostics: bool = False
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one batch and its statistics (tensors, read by the training loop every log_every steps).
        diagnostics: add the collapse diagnostics of `dos.pretrain.diagnostics` (an SVD and a softmap: for
        logged steps)."""
        # The student's voxels are view voxels on the same grid (observable: the rows s.index; naive: all of
        # them), except the jittered tokens of token_jitter: then the view is serialized once and the student's
        # neighbour maps and poolings are read from the teacher's pass.
        on_view_voxels = self.distill.mode != "token_jitter"
        encode = getattr(self.teacher["encoder"], "encode_curves", None)  # optional part of the encoder contract
        t_curves = encode(batch.grid_coord) if encode is not None else None
        s_curves = None
        if t_curves is not None and on_view_voxels:
            s_curves = t_curves.select(batch.student.index)
        with torch.no_grad():
            t_out = self.teacher["encoder"](batch.coord, batch.feat, batch.grid_coord, batch.offset,
                                            **({"curves": t_curves} if t_curves is not None else {}))
            t_protos = self.teacher["prototypes"].unit_vectors()
        s = batch.student
        extra = {"curves": s_curves} if s_curves is not None else {}
        if getattr(self.student["encoder"], "reuses_reference", False) and on_view_voxels:
            extra.update(reference=t_out, reference_rows=s.index if self.distill.mode == "observable" else None)
        s_out = self.student["encoder"](s.coord, s.feat, s.grid_coord, s.offset,
                                        token_mask=s.token_mask, mask_token=self.mask_token, **extra)
        num_units = s_out.unit_feat.shape[0]
        unit_cloud = offset_to_batch(s_out.unit_offset)
        # a unit is supervised when any of its points is (CUDA has no bool scatter_reduce: index instead)
        supervised = torch.zeros(num_units, dtype=torch.bool, device=s_out.unit_feat.device)
        supervised[s_out.point_to_unit[s.supervised]] = True
        rows = supervised.nonzero().squeeze(1)
        # the teacher units each loss reads: the same voxel (same view) and the nearest within the radius in the
        # other view of the scan (cross view, where one is found)
        t_same = same_view_pairs(s_out.point_to_unit, s.index, t_out.point_to_unit, num_units)[rows]
        picked = t_cross = None
        if self.distill.cross_view:
            num_views = len(batch.offset)
            partner = (unit_cloud[rows] + num_views // 2) % num_views
            s_origin = scatter_mean(batch.origin_coord[s.index], s_out.point_to_unit, num_units)[rows]
            t_origin = scatter_mean(batch.origin_coord, t_out.point_to_unit, t_out.unit_feat.shape[0])
            match = radius_nearest(s_origin, partner, t_origin, offset_to_batch(t_out.unit_offset),
                                   self.distill.cross_view_radius)
            picked = (match >= 0).nonzero().squeeze(1)  # indices into rows
            t_cross = take_rows(match, picked)
        with torch.no_grad():
            # The teacher head runs on the teacher units a loss reads only (about 60% of them), once each.
            used, local = torch.unique(t_same if t_cross is None else torch.cat([t_same, t_cross]),
                                       return_inverse=True)
            t_embed = self.teacher["head"](take_rows(t_out.unit_feat, used))
            t_same, t_cross = local[:len(t_same)], None if t_cross is None else local[len(t_same):]
        # the student head runs on the supervised units only
        s_embed = self.student["head"](take_rows(s_out.unit_feat, rows))
        s_protos = self.student["prototypes"].unit_vectors()
        # Diverged weights: without a host read, non-finite embeddings are zeroed (so that the Sinkhorn's input
        # check passes) and the loss is made NaN, which the training loop's guard reports.
        finite = torch.isfinite(t_embed).all() & torch.isfinite(s_embed).all()
        t_embed = torch.where(finite, t_embed, torch.zeros_like(t_embed))
        s_embed = torch.where(finite, s_embed, torch.zeros_like(s_embed))
        poison = torch.where(finite, 0.0, float("nan")).to(torch.float32)

        # The student's prototype logits are computed once, on the supervised units: the cross-view loss takes
        # its rows from them.
        s_logits = prototype_logits(self.target, s_embed, s_protos, student_temp)

        def loss_on(picked: torch.Tensor | None, teacher_rows: torch.Tensor,
                    t_logits: torch.Tensor | None = None) -> torch.Tensor:
            """The loss of the supervised units `picked` (indices into rows; None: all) against the teacher
            embeddings `teacher_rows`."""
            student = s_embed if picked is None else take_rows(s_embed, picked)
            if len(student) == 0:
                return s_embed.sum() * 0.0
            logits = s_logits if picked is None or s_logits is None else take_rows(s_logits, picked)
            return distillation_loss(self.target, student, take_rows(t_embed, teacher_rows), s_protos,
                                     student_temp, teacher_temp,
                                     segments=unit_cloud[rows] if picked is None else unit_cloud[rows[picked]],
                                     all_reduce=all_reduce, teacher_prototypes=t_protos, student_logits=logits,
                                     teacher_logits=t_logits)

        with torch.no_grad():
            # the same-view teacher logits serve the loss and the prototype-usage statistic
            t_logits = prototype_logits(self.target, take_rows(t_embed, t_same), t_protos, teacher_temp)
        loss_same = loss_on(None, t_same, t_logits)
        # statistics stay tensors (the training loop reads them every log_every steps)
        stats = {"units_supervised": float(len(rows)), "units_student": float(num_units),
                 "units_teacher": float(t_out.unit_feat.shape[0]), "loss_same": loss_same.detach()}
        if self.distill.cross_view:
            loss_cross = loss_on(picked, t_cross)
            loss = loss_same + loss_cross
            stats.update(cross_matched=float(len(picked)), cross_unmatched=float(len(rows) - len(picked)),
                         loss_cross=loss_cross.detach())
        else:
            loss = 2.0 * loss_same
        with torch.no_grad():
            if t_logits is not None:
                # Regression (no logits) trains no prototypes: the argmax over its untouched random prototypes
                # would say where the embeddings point, not how prototypes are used, so it records none (its
                # collapse statistic is the effective rank).
                stats.update(usage_statistics(t_logits, self.target, unit_cloud[rows]))
            if diagnostics:
                t_supervised = take_rows(t_embed, t_same)
                stats["effective_rank"] = effective_rank(t_supervised)
                stats["softmap_entropy"], stats["softmap_entropy_fraction"] = softmap_entropy(
                    t_logits if t_logits is not None else t_supervised @ (t_protos / teacher_temp).t(),
                    unit_cloud[rows])
        loss = loss + poison
        stats["loss"] = loss.detach()
        return loss, stats
