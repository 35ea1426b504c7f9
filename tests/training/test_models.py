"""BYOL-A encoders: SPEC §2 parameter counts and embedding sizes, pooling, and loading official v1 files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import training.models as models
from training.models import Encoder, ModelConfig, embed, folded_blocks, parameter_count, pool, pool_relu
from training.weights import load_v1, require_stats, v1_shapes


@pytest.mark.parametrize("cfg, params, dim", [
    (ModelConfig(), 6_333_376, 3072),
    (ModelConfig(arch="v1", d=2048), 5_321_856, 2048),
    (ModelConfig(arch="v1", d=512), 600_192, 512),
])
def test_parameter_counts_and_embedding_sizes_are_specs(cfg, params, dim):
    encoder = Encoder(cfg)
    assert parameter_count(encoder) == params
    assert cfg.embedding_dim == dim
    assert embed(encoder, torch.randn(2, 1, 64, 96)).shape == (2, dim)


def test_frames_are_per_quarter_frame_and_v2_concatenates_conv_then_mlp():
    torch.manual_seed(0)
    encoder = Encoder(ModelConfig()).eval()
    x = torch.randn(3, 1, 64, 96)
    frames = encoder.frames(x)
    assert frames.shape == (3, 24, 3072)
    conv = encoder.features(x).permute(0, 3, 2, 1).flatten(2)  # (B, T', mels' * C), channel fastest
    torch.testing.assert_close(frames[..., :1024], conv)
    torch.testing.assert_close(frames[..., 1024:], encoder.fc(conv))


def test_pool_is_max_plus_mean_over_time():
    frames = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [2.0, 5.0]]])
    torch.testing.assert_close(pool(frames), torch.tensor([[3.0 + 2.0, 5.0 + 1.0]]))


def test_embed_is_eval_mode_and_restores_training():
    encoder = Encoder(ModelConfig(channels=8, d=32)).train()
    x = torch.randn(4, 1, 64, 40)
    first, second = embed(encoder, x), embed(encoder, x)
    torch.testing.assert_close(first, second)  # no dropout, BatchNorm running stats: deterministic
    assert encoder.training


def _with_batchnorm_stats(encoder: Encoder) -> Encoder:
    """Running stats and affine parameters away from their defaults, so folding them is really tested."""
    gen = torch.Generator().manual_seed(3)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen))
            module.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
            module.weight.data.copy_(1 + 0.3 * torch.randn(n, generator=gen))
            module.bias.data.copy_(torch.randn(n, generator=gen))
    return encoder


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(arch="v1", d=512), ModelConfig(channels=8, d=64)])
def test_embed_equals_the_plain_eval_forward(cfg, monkeypatch):
    """embed's folded, reordered, chunked inference against Encoder.forward in eval mode: the same numbers up
    to float rounding, whether the batch fits one chunk, is cut into several, or one input is longer than a
    chunk (odd frame and mel counts crop as MaxPool2d does)."""
    torch.manual_seed(0)
    encoder = _with_batchnorm_stats(Encoder(cfg)).eval()
    x = torch.randn(5, 1, 64, 333)
    with torch.no_grad():
        reference = encoder(x)
    scale = reference.abs().max()
    for chunk in (models.EVAL_CHUNK_FRAMES, 700, 100):  # 3 inputs, 2 inputs, 1 input (> chunk) per pass
        monkeypatch.setattr(models, "EVAL_CHUNK_FRAMES", chunk)
        torch.testing.assert_close(embed(encoder, x), reference, rtol=0, atol=2e-6 * scale)


def test_folded_blocks_are_conv_then_eval_batchnorm():
    torch.manual_seed(1)
    encoder = _with_batchnorm_stats(Encoder(ModelConfig(channels=8, d=16))).eval()
    x = torch.randn(2, 1, 64, 20)
    (weight, bias), _ = folded_blocks(encoder)
    with torch.no_grad():
        expected = encoder.features[1](encoder.features[0](x))
        torch.testing.assert_close(torch.nn.functional.conv2d(x, weight, bias, padding=1), expected,
                                   rtol=1e-5, atol=1e-5)


def test_pool_relu_is_relu_then_maxpool():
    y = torch.randn(2, 3, 9, 13)  # odd sizes: the last row and column are dropped, as MaxPool2d(2, 2) drops them
    torch.testing.assert_close(pool_relu(y.clone()), torch.nn.functional.max_pool2d(y.relu(), 2), rtol=0, atol=0)


def test_wrong_input_shape_is_one_clear_error():
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 64, frames\)"):
        Encoder()(torch.randn(2, 64, 96))
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 64, frames\)"):
        embed(Encoder(), torch.randn(2, 1, 32, 96))
    with pytest.raises(ValueError, match="arch='v3'"):
        ModelConfig(arch="v3")


def _write_v1(path: Path, d: int, prefix: str = "", drop: str | None = None, extra: str | None = None) -> dict:
    torch.manual_seed(1)
    state = Encoder(ModelConfig(arch="v1", d=d)).state_dict()
    state = {f"{prefix}{k}": v for k, v in state.items() if k != drop}
    if extra:
        state[extra] = torch.zeros(1)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("prefix", ["", "module.", "model."])
def test_official_v1_layout_loads_under_a_prefix(tmp_path: Path, prefix: str):
    saved = _write_v1(tmp_path / "v1.pth", 2048, prefix)
    encoder = load_v1(tmp_path / "v1.pth")
    assert encoder.cfg == ModelConfig(arch="v1", d=2048)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, saved[f"{prefix}{key}"])


def test_v1_key_table_is_the_official_one():
    shapes = v1_shapes(2048)
    assert shapes["features.0.weight"] == (64, 1, 3, 3) and shapes["features.8.weight"] == (64, 64, 3, 3)
    assert shapes["fc.0.weight"] == (2048, 512) and shapes["fc.3.weight"] == (2048, 2048)
    assert sorted({k.split(".")[1] for k in shapes if k.startswith("features")}) == ["0", "1", "4", "5", "8", "9"]
    ours = {k: tuple(v.shape) for k, v in Encoder(ModelConfig(arch="v1", d=2048)).state_dict().items()
            if not k.endswith("num_batches_tracked")}
    assert ours == shapes


def test_missing_unknown_and_foreign_files_are_one_line_errors(tmp_path: Path):
    _write_v1(tmp_path / "missing.pth", 512, drop="features.9.running_var")
    with pytest.raises(ValueError, match=r"missing: \['features.9.running_var'\]"):
        load_v1(tmp_path / "missing.pth")
    _write_v1(tmp_path / "unknown.pth", 512, extra="head.weight")
    with pytest.raises(ValueError, match=r"unknown: \['head.weight'\]"):
        load_v1(tmp_path / "unknown.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable weights-only"):
        load_v1(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="put the BYOL-A v1"):
        load_v1(tmp_path / "absent.pth")


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path):
    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran')",))

    torch.save({"features.0.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="not a loadable weights-only"):
        load_v1(tmp_path / "evil.pth")


def test_foreign_weights_need_stats():
    with pytest.raises(ValueError, match="--norm-mean and --norm-std"):
        require_stats(None, 1.0, "byola-v1:x.pth")
    with pytest.raises(ValueError, match="std must be > 0"):
        require_stats(0.0, 0.0, "byola-v1:x.pth")
    assert require_stats(-5.0, 4.0, "x") == (-5.0, 4.0)
