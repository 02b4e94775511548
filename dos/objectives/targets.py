"""The distillation targets compared in Tables 5 and 10, as options of one objective.

Every option maps matched student/teacher embeddings (L2-normalised, [N, D]) of the supervised points to a loss:
- "softmap" (DOS): teacher softmaps over points, optionally regularised by (Zipf-)Sinkhorn; KL to the
  student's softmaps. `sinkhorn=False` is "softmap without Sinkhorn"; `zipf_alpha=0` is the uniform
  Sinkhorn-Knopp; `zipf_alpha>0` is Zipf-Sinkhorn.
- "clustering" (Sonata-style online clustering): Sinkhorn assignments normalised over prototypes for each
  point, cross-entropy to the student's per-point softmax over prototypes. The transport problem spans the
  whole batch (all clouds together), as in Sonata; `all_reduce` extends it across processes.
- "regression" (MSM-style feature regression): 1 - cosine(student, teacher); prototypes are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dos.objectives.segments import segment_rows
from dos.objectives.sinkhorn import AllReduce, sinkhorn_point_assignments, zipf_sinkhorn
from dos.objectives.softmap import softmap, softmap_loss

TARGETS = ("softmap", "clustering", "regression")


@dataclass(frozen=True)
class TargetConfig:
    target: str = "softmap"
    sinkhorn: bool = True       # regularise the teacher targets with (Zipf-)Sinkhorn
    zipf_alpha: float = 1.3     # Zipf exponent of the prototype prior; 0 = uniform
    sinkhorn_iters: int = 3

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"objective.target must be one of {TARGETS}, got {self.target!r}")
        if self.zipf_alpha < 0:
            raise ValueError(f"objective.zipf_alpha must be >= 0, got {self.zipf_alpha}")
        if self.sinkhorn_iters < 1:
            raise ValueError(f"objective.sinkhorn_iters must be >= 1, got {self.sinkhorn_iters}")


def _mean_over_clouds(per_point: torch.Tensor, segments: torch.Tensor | None) -> torch.Tensor:
    clouds = segment_rows(per_point.shape[0], segments, per_point.device)
    sums = clouds.onehot(per_point.dtype).t() @ per_point
    counts = clouds.counts.to(per_point.dtype)
    return (sums / counts.clamp_min(1)).sum() / (counts > 0).sum()  # empty clouds add 0 and are not counted


def prototype_logits(config: TargetConfig, embed: torch.Tensor, prototypes: torch.Tensor | None, temp: float
                     ) -> torch.Tensor | None:
    """[N, K] cosine / temp logits of unit-norm embeddings against unit-norm prototypes, or None for the
    regression target (which uses no prototypes). The temperature divides the [K, D] prototypes rather than
    the [N, K] logits."""
    if config.target == "regression" or prototypes is None:
        return None
    return embed @ (prototypes / temp).t()


def distillation_loss(config: TargetConfig, student_embed: torch.Tensor, teacher_embed: torch.Tensor,
                      prototypes: torch.Tensor | None, student_temp: float, teacher_temp: float,
                      segments: torch.Tensor | None = None, all_reduce: AllReduce | None = None,
                      teacher_prototypes: torch.Tensor | None = None, student_logits: torch.Tensor | None = None,
                      teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Loss between matched rows of student and teacher embeddings, averaged over point clouds.

    `prototypes` [K, D] must be unit-norm (cosine logits). `teacher_prototypes` (default: the same) are the
    EMA teacher's copy. The teacher side carries no gradient. `student_logits` / `teacher_logits`: the
    `prototype_logits` of these rows when the caller has them already (rows of a larger product), so that they
    are not computed twice.
    """
    if student_embed.shape != teacher_embed.shape:
        raise ValueError(f"student {tuple(student_embed.shape)} and teacher {tuple(teacher_embed.shape)} "
                         "embeddings must be matched row by row")
    teacher_embed = teacher_embed.detach()
    if segments is not None:
        segments = segment_rows(student_embed.shape[0], segments, student_embed.device)  # validated once
    if config.target == "regression":
        cosine = F.cosine_similarity(student_embed.float(), teacher_embed.float(), dim=1)
        return _mean_over_clouds(1.0 - cosine, segments)
    if prototypes is None:
        raise ValueError(f"the {config.target!r} target needs prototypes")
    if student_logits is None:
        student_logits = prototype_logits(config, student_embed, prototypes, student_temp)
    if teacher_logits is None:
        with torch.no_grad():
            teacher_protos = prototypes if teacher_prototypes is None else teacher_prototypes
            teacher_logits = prototype_logits(config, teacher_embed, teacher_protos.detach(), teacher_temp)
    teacher_logits = teacher_logits.detach()
    if student_logits.shape != teacher_logits.shape or student_logits.shape[0] != student_embed.shape[0]:
        raise ValueError(f"logits {tuple(student_logits.shape)} / {tuple(teacher_logits.shape)} do not match "
                         f"{student_embed.shape[0]} embedding rows")
    if config.target == "clustering":
        if config.sinkhorn:
            targets = sinkhorn_point_assignments(teacher_logits, config.zipf_alpha, config.sinkhorn_iters,
                                                 None, all_reduce)
        else:
            targets = torch.softmax(teacher_logits.float(), dim=1)
        cross_entropy = -(targets * torch.log_softmax(student_logits.float(), dim=1)).sum(dim=1)
        return _mean_over_clouds(cross_entropy, segments)
    if config.sinkhorn:
        targets = zipf_sinkhorn(teacher_logits, config.zipf_alpha, config.sinkhorn_iters, segments)
    else:
        targets = softmap(teacher_logits, segments)
    return softmap_loss(student_logits, targets, segments)
