"""One BYOL-A optimisation step, shared by the training loop and the benchmarks that time it."""

from __future__ import annotations

import torch

from training.augment import Augment
from training.byol import BYOL


def make_optimizer(byol: BYOL, lr: float) -> torch.optim.Adam:
    """Adam without weight decay (SPEC §2) over the online network and predictor; the target is never
    optimised (it follows by EMA)."""
    params = [*byol.online.parameters(), *byol.predictor.parameters()]
    return torch.optim.Adam(params, lr=lr, weight_decay=0.0)


def train_step(byol: BYOL, augment: Augment, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               generator: torch.Generator, bf16: bool = False, network: torch.nn.Module | None = None) -> torch.Tensor:
    """Augment a normalised batch into two views, one Adam step on the symmetric loss, then the EMA update.
    `network` is what runs the forward pass when it is not `byol` itself (its DistributedDataParallel
    wrapper). Returns the loss (detached, on the device: reading it would synchronise the GPU every step)."""
    v1, v2 = augment(x, generator)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = (network if network is not None else byol)(v1, v2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    byol.update_target()
    return loss.detach()
