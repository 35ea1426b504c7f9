"""BYOL around a BYOL-A encoder (SPEC §2): online = encoder -> projector -> predictor; target = an EMA copy of
encoder + projector, never trained by gradients; loss = 2 - 2 cos(prediction(v1), target(v2)), symmetrised
(both view orders summed, as BYOL does) and averaged over the batch."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from training.models import Encoder

HIDDEN, PROJECTION = 4096, 256  # SPEC §2: MLP(in -> 4096 -> BN -> ReLU -> 256) for projector and predictor


def mlp(in_dim: int, hidden: int = HIDDEN, out_dim: int = PROJECTION) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) per row; 0 when the two point the same way."""
    return 2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=-1, eps=1e-8)


class BYOL(nn.Module):
    def __init__(self, encoder: Encoder, hidden: int = HIDDEN, projection: int = PROJECTION, tau: float = 0.99):
        super().__init__()
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau={tau} must be in [0, 1]")
        self.tau = tau
        self.online = nn.ModuleDict({"encoder": encoder, "projector": mlp(encoder.cfg.embedding_dim, hidden,
                                                                          projection)})
        self.predictor = mlp(projection, hidden, projection)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """The symmetric loss of a batch's two views (batch mean)."""
        # One pass per network over both views (2B clips): BatchNorm normalises over the 2B batch, and the GPU
        # runs one kernel per layer instead of two.
        views = torch.cat([v1, v2])
        p = self.predictor(self.online["projector"](self.online["encoder"](views)))
        with torch.no_grad():
            z = self.target["projector"](self.target["encoder"](views))
        b = len(v1)
        loss = regression_loss(p[:b], z[b:]) + regression_loss(p[b:], z[:b])
        return loss.mean()

    @torch.no_grad()
    def update_target(self) -> None:
        """target <- tau * target + (1 - tau) * online, for parameters. BatchNorm running statistics are not
        averaged: the target keeps its own, updated by its forward passes in train mode, as BYOL does."""
        torch._foreach_lerp_(list(self.target.parameters()), list(self.online.parameters()), 1.0 - self.tau)
