"""BYOL-A encoders (SPEC §2): v2, the paper's text (the default), and v1, the code the paper's repository ships.

Both are conv blocks [Conv2d 3x3 pad 1 -> BatchNorm2d -> ReLU -> MaxPool 2x2] over a (B, 1, mels, frames)
log-mel, then a per-frame MLP [Linear, ReLU, Dropout, Linear, ReLU]. Per frame the conv output is flattened
as (mel, channel) with the channel fastest, the layout official v1 checkpoints were trained with. v2 has two
blocks and concatenates [conv features, MLP output] per frame (64*16 + 2048 = 3,072); v1 has three blocks
and keeps the MLP output only (d). Pooling over time is max + mean (a sum, not a concatenation). Module
names follow the official v1 state_dict (`features.{0,1,4,5,8,9}`, `fc.{0,3}`) so its files load as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("v2", "v1")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    arch: str = "v2"  # v2: the paper's text (2 conv blocks + concat); v1: its released code (3 blocks)
    n_mels: int = 64  # the front end's mel bands (SPEC §2)
    channels: int = 64  # conv channels of every block (SPEC §2)
    d: int = 2048  # MLP width; v1's embedding size (SPEC §2: 2,048 by default; 512 and 1,024 also published)
    dropout: float = 0.3  # between the two MLP layers (SPEC §2)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r}, expected one of {ARCHS}")
        for name in ("n_mels", "channels", "d"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_mels % (2 ** self.blocks):
            raise ValueError(f"n_mels={self.n_mels} must be divisible by {2 ** self.blocks} ({self.blocks} 2x2 pools)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")

    @property
    def blocks(self) -> int:
        return 2 if self.arch == "v2" else 3

    @property
    def conv_dim(self) -> int:
        """Per-frame size of the flattened conv output (v2: 64 * 16 = 1,024; v1: 64 * 8 = 512)."""
        return self.channels * (self.n_mels >> self.blocks)

    @property
    def embedding_dim(self) -> int:
        return self.conv_dim + self.d if self.arch == "v2" else self.d

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return cls(**dict(values))


class Encoder(nn.Module):
    """A BYOL-A encoder: (B, 1, n_mels, frames) normalised log-mel -> (B, embedding_dim) pooled embedding."""

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        for block in range(cfg.blocks):
            layers += [nn.Conv2d(1 if block == 0 else cfg.channels, cfg.channels, 3, padding=1),
                       nn.BatchNorm2d(cfg.channels), nn.ReLU(), nn.MaxPool2d(2, stride=2)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(cfg.conv_dim, cfg.d), nn.ReLU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.d, cfg.d), nn.ReLU())

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, frames // 2**blocks, embedding_dim), before temporal pooling."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.cfg.n_mels:
            raise ValueError(f"input shape {tuple(x.shape)}, expected (batch, 1, {self.cfg.n_mels}, frames)")
        z = self.features(x)  # (B, C, mels', T')
        z = z.permute(0, 3, 2, 1).flatten(2)  # (B, T', mels' * C), channel fastest
        out = self.fc(z)
        return torch.cat([z, out], dim=-1) if self.cfg.arch == "v2" else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool(self.frames(x))


def pool(frames: torch.Tensor) -> torch.Tensor:
    """BYOL-A temporal pooling: max over time plus mean over time, (B, T, D) -> (B, D)."""
    return frames.amax(dim=1) + frames.mean(dim=1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


EVAL_CHUNK_FRAMES = 1024  # log-mel frames per inference pass (`embed`): the first block's activations stay cache-sized


def pool_relu(y: torch.Tensor) -> torch.Tensor:
    """MaxPool2d(2, 2) then ReLU of (..., mels, frames): the block's ReLU -> pool reordered (ReLU is monotone,
    so they commute exactly) to run on a quarter of the values, and the pool as two strided maxima, ~4x
    faster on CPU than max_pool2d (measured at 1 thread on block-1 shapes)."""
    y = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
    y = torch.maximum(y[..., 0::2, :], y[..., 1::2, :])
    return torch.maximum(y[..., 0::2], y[..., 1::2]).relu_()


def folded_blocks(encoder: Encoder) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each conv block's (weight, bias) with its eval-mode BatchNorm folded in: w * s, (b - mean) * s + beta with
    s = gamma / sqrt(var + eps). One pass over the block's activations instead of two (the BatchNorm pass was
    15 % of a v2 forward on CPU); outputs equal the unfolded blocks' to float rounding (tests)."""
    out = []
    for block in range(encoder.cfg.blocks):
        conv, bn = encoder.features[4 * block], encoder.features[4 * block + 1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        weight = (conv.weight * scale.view(-1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
        out.append((weight, (bias - bn.running_mean) * scale + bn.bias))
    return out


def _eval_forward(encoder: Encoder, blocks: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """`Encoder.forward` in eval mode, with the folded blocks, pool before ReLU, and the concat pooled per part
    (max and mean are per column, so pooling [conv, MLP] equals concatenating the parts' pools)."""
    for weight, bias in blocks:
        x = pool_relu(F.conv2d(x, weight, bias, padding=1))
    z = x.permute(0, 3, 2, 1).flatten(2)  # (B, T', mels' * C), channel fastest (Encoder.frames)
    out = pool(encoder.fc(z))
    return torch.cat([pool(z), out], dim=-1) if encoder.cfg.arch == "v2" else out


@torch.no_grad()
def embed(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
    """The embedding every downstream user takes: eval mode (BatchNorm running stats, no dropout), no
    gradients, pooled as SPEC §2; `x` (B, 1, n_mels, frames) is already normalised with the model's own stats.
    The encoder's training flag is restored afterwards.

    Inference runs the same arithmetic as `Encoder.forward` reordered for speed (`folded_blocks`, `pool_relu`),
    channels-last, EVAL_CHUNK_FRAMES log-mel frames at a time: on 2 CPU cores a v2 forward over 49 five-second
    clips at once ran at 26 ms a clip, one clip at a time at 17 ms (its 400 MB of first-block activations
    left the cache; bench `store`). Outputs equal `Encoder.forward`'s to float rounding (tests)."""
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != encoder.cfg.n_mels:
        raise ValueError(f"input shape {tuple(x.shape)}, expected (batch, 1, {encoder.cfg.n_mels}, frames)")
    was_training = encoder.training
    encoder.eval()
    try:
        blocks = folded_blocks(encoder)
        x = x.contiguous(memory_format=torch.channels_last)
        step = max(1, EVAL_CHUNK_FRAMES // x.shape[-1])
        return torch.cat([_eval_forward(encoder, blocks, x[i: i + step]) for i in range(0, len(x), step)])
    finally:
        encoder.train(was_training)
