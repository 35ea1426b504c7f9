"""Augmentations and BYOL, each against its definition (SPEC §2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shards.frontend import EPS
from training.augment import (Augment, AugmentConfig, MixupMemory, linear_fader, mix, post_normalise,
                              random_resize_crop, resize_crop)
from training.byol import BYOL, regression_loss
from training.models import Encoder, ModelConfig


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mix_is_the_linear_domain_definition_and_alpha_zero_is_identity():
    x, z = torch.randn(3, 1, 4, 5), torch.randn(3, 1, 4, 5)
    alpha = torch.tensor([0.0, 0.1, 0.2])
    out = mix(x, z, alpha)
    expected = np.log((1 - 0.1) * np.exp(x[1].double().numpy()) + 0.1 * np.exp(z[1].double().numpy()) + EPS)
    np.testing.assert_allclose(out[1].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(out[0], torch.log(x[0].exp() + EPS))  # alpha 0: the input (up to eps)


def test_mixup_memory_is_a_fifo_of_past_inputs():
    memory = MixupMemory(4, (1, 2, 2))
    assert memory.partners(3, _gen()) is None  # nothing to mix with yet
    for start in (0, 3):
        memory.push(torch.arange(start, start + 3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 2, 2))
    assert memory.filled == 4 and memory.next == 2
    assert memory.buffer[:, 0, 0, 0].tolist() == [4.0, 5.0, 2.0, 3.0]  # 0 and 1 overwritten first
    partners = memory.partners(100, _gen())
    assert set(partners[:, 0, 0, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0}


def test_crop_of_scale_one_at_the_centre_is_the_input():
    x = torch.randn(2, 1, 64, 96)
    b = len(x)
    ones = torch.ones(b)
    # the canvas is 144 wide with the input at columns 24..119: a 64 x 96 crop at (0, 24) is the input
    out = resize_crop(x, 0 * ones, 24 * ones, 64 * ones, 96 * ones, 1.5)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_crop_matches_interpolate_inside_and_zero_canvas_outside():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 64, 96)
    # a crop well inside the input: same as cropping then bicubic F.interpolate, away from the crop's edges
    top, left, h, w = 10.0, 40.0, 40.0, 60.0
    out = resize_crop(x, torch.tensor([top]), torch.tensor([left]), torch.tensor([h]), torch.tensor([w]), 1.5)
    crop = x[..., int(top):int(top + h), int(left - 24):int(left - 24 + w)]
    ref = F.interpolate(crop, size=(64, 96), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-4, rtol=0)
    # a crop of the canvas's left padding only: zeros
    pad_only = resize_crop(x, torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([64.0]), torch.tensor([20.0]),
                           1.5)
    assert pad_only[..., :60].abs().max() < 1e-6


def test_random_crops_keep_the_shape_and_vary():
    x = torch.randn(8, 1, 64, 96)
    out = random_resize_crop(x, AugmentConfig(), _gen())
    assert out.shape == x.shape and not torch.allclose(out[0], x[0])


def test_fader_adds_a_linear_ramp_and_zero_ramp_is_identity():
    x = torch.randn(2, 1, 3, 5)
    zero = torch.zeros(2)
    torch.testing.assert_close(linear_fader(x, zero, zero), x)
    out = linear_fader(x, torch.tensor([-1.0, 0.5]), torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(out[0] - x[0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).expand(1, 3, 5))
    torch.testing.assert_close(out[1] - x[1], torch.full((1, 3, 5), 0.5))


def test_views_are_post_normalised_together_and_memory_grows():
    augment = Augment(AugmentConfig(mixup_memory=16), (1, 64, 96))
    x = torch.randn(6, 1, 64, 96) * 3 + 1
    v1, v2 = augment(x, _gen())
    both = torch.cat([v1, v2])
    assert v1.shape == x.shape == v2.shape
    assert abs(float(both.mean())) < 1e-5 and abs(float(both.std()) - 1) < 1e-4
    assert augment.memory.filled == 6
    torch.testing.assert_close(post_normalise(both), both, atol=1e-5, rtol=0)


def test_loss_is_zero_for_identical_directions_and_four_for_opposite():
    p = torch.randn(5, 256)
    torch.testing.assert_close(regression_loss(p, 3 * p), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(regression_loss(p, -p), torch.full((5,), 4.0))


def test_ema_update_arithmetic_and_target_gets_no_gradient():
    torch.manual_seed(0)
    byol = BYOL(Encoder(ModelConfig(channels=4, d=16)), hidden=32, projection=8, tau=0.9)
    with torch.no_grad():
        for p in byol.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in byol.target.parameters()]
    online = [p.clone() for p in byol.online.parameters()]
    byol.update_target()
    for t0, o, t1 in zip(before, online, byol.target.parameters()):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * o)
    loss = byol(torch.randn(4, 1, 64, 32), torch.randn(4, 1, 64, 32))
    loss.backward()
    assert all(p.grad is None for p in byol.target.parameters())
    assert byol.predictor[0].weight.grad is not None and 0 <= float(loss.detach()) <= 8


@pytest.mark.parametrize("alpha", [0.2])
def test_augment_is_deterministic_given_the_generator(alpha):
    x = torch.randn(4, 1, 64, 96)
    runs = []
    for _ in range(2):
        augment = Augment(AugmentConfig(mixup_alpha=alpha), (1, 64, 96))
        augment(x, _gen(3))
        runs.append(torch.cat(augment(x, _gen(4))))
    torch.testing.assert_close(runs[0], runs[1])


def test_separable_crop_equals_grid_sample_bicubic_with_zero_padding():
    g = _gen(5)
    x = torch.randn(64, 1, 64, 96)
    cfg = AugmentConfig()
    height = (64 * (cfg.crop_min + (cfg.crop_max - cfg.crop_min) * torch.rand(64, generator=g))).round().clamp(1, 64)
    width = (96 * (cfg.crop_min + (cfg.crop_max - cfg.crop_min) * torch.rand(64, generator=g))).round().clamp(1, 144)
    top = (torch.rand(64, generator=g) * (64 - height + 1)).floor()
    left = (torch.rand(64, generator=g) * (144 - width + 1)).floor()
    ours = resize_crop(x, top, left, height, width, 1.5)
    rows, cols = torch.arange(64) + 0.5, torch.arange(96) + 0.5
    y = top[:, None] + rows[None] * (height[:, None] / 64) - 0.5
    xs = left[:, None] + cols[None] * (width[:, None] / 96) - 0.5 - 24
    grid = torch.stack(torch.broadcast_tensors(((2 * xs + 1) / 96 - 1)[:, None, :], ((2 * y + 1) / 64 - 1)[:, :, None]),
                       dim=-1)
    reference = F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
