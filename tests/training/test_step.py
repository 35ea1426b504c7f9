"""One training step: Adam moves the online network, the target follows by EMA only, Mixup memory fills."""

from __future__ import annotations

import torch

from training.augment import Augment, AugmentConfig
from training.byol import BYOL
from training.models import Encoder, ModelConfig
from training.step import make_optimizer, train_step


def test_a_step_trains_online_and_moves_target_by_ema_only():
    torch.manual_seed(0)
    byol = BYOL(Encoder(ModelConfig(channels=4, d=16)), hidden=32, projection=8, tau=0.5)
    augment = Augment(AugmentConfig(mixup_memory=8), (1, 64, 32))
    optimizer = make_optimizer(byol, 1e-2)
    assert len(optimizer.param_groups[0]["params"]) == len(list(byol.online.parameters())) + len(
        list(byol.predictor.parameters()))
    online0 = [p.clone() for p in byol.online.parameters()]
    target0 = [p.clone() for p in byol.target.parameters()]
    loss = train_step(byol, augment, optimizer, torch.randn(6, 1, 64, 32), torch.Generator().manual_seed(1))
    assert loss.requires_grad is False and torch.isfinite(loss)
    online1 = list(byol.online.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(online0, online1))
    for t0, o1, t1 in zip(target0, online1, byol.target.parameters()):
        torch.testing.assert_close(t1, 0.5 * t0 + 0.5 * o1)  # EMA with the updated online weights
    assert augment.memory.filled == 6
