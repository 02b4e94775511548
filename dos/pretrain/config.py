"""The schema of a pretraining config file (the sections built so far; training-loop sections join them as the
engine lands). Each section is the config dataclass of the component that uses it."""

from __future__ import annotations

from dataclasses import dataclass, field

from dos.objectives.targets import TargetConfig
from dos.pretrain.masking import MaskingConfig
from dos.pretrain.model import DistillConfig
from dos.pretrain.teacher import TeacherConfig
from dos.pretrain.views import ViewConfig


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    views: ViewConfig = field(default_factory=ViewConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    objective: TargetConfig = field(default_factory=TargetConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
