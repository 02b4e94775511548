"""The DOS objective: Zipf-Sinkhorn, semantic softmaps, and the training targets compared in Tables 5 and 10."""

from dos.objectives.sinkhorn import sinkhorn_point_assignments, zipf_prior, zipf_sinkhorn
from dos.objectives.softmap import softmap, softmap_loss

__all__ = ["zipf_prior", "zipf_sinkhorn", "sinkhorn_point_assignments", "softmap", "softmap_loss"]
