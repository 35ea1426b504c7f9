"""WavLM Base+: a random torchaudio WavLM-Base model written in each key layout (by inverse mappings written
here, independently of featurestore.wavlm, from microsoft/unilm WavLM.py + modules.py and transformers
modeling_wavlm.py), loaded back by `load_wavlm`, must give bit-identical outputs."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
import torchaudio

from featurestore import wavlm as W

BASE_PLUS_CFG = {"extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
                 "layer_norm_first": False, "normalize": False, "relative_position_embedding": True,
                 "num_buckets": 320, "max_distance": 800, "gru_rel_pos": True, "conv_pos": 128, "conv_pos_groups": 16}


def _split_in_proj(prefix: str, kind: str, tensor: torch.Tensor, out: dict) -> None:
    for name, part in zip("qkv", tensor.chunk(3)):
        out[f"{prefix}{name}_proj.{kind}"] = part.clone()


def to_microsoft(sd: dict) -> dict:
    """torchaudio -> fairseq names of microsoft/unilm wavlm (WavLM.py, modules.py MultiheadAttention)."""
    out = {"mask_emb": torch.rand(768)}
    fixed = {"encoder.feature_projection.layer_norm.weight": "layer_norm.weight",
             "encoder.feature_projection.layer_norm.bias": "layer_norm.bias",
             "encoder.feature_projection.projection.weight": "post_extract_proj.weight",
             "encoder.feature_projection.projection.bias": "post_extract_proj.bias",
             "encoder.transformer.pos_conv_embed.conv.bias": "encoder.pos_conv.0.bias",
             "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
             "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v",
             "encoder.transformer.layer_norm.weight": "encoder.layer_norm.weight",
             "encoder.transformer.layer_norm.bias": "encoder.layer_norm.bias",
             "feature_extractor.conv_layers.0.layer_norm.weight": "feature_extractor.conv_layers.0.2.weight",
             "feature_extractor.conv_layers.0.layer_norm.bias": "feature_extractor.conv_layers.0.2.bias"}
    inner = [("attention.attention.out_proj.", "self_attn.out_proj."),
             ("attention.rel_attn_embed.", "self_attn.relative_attention_bias."),
             ("attention.gru_rel_pos_linear.", "self_attn.grep_linear."),
             ("attention.gru_rel_pos_const", "self_attn.grep_a"),
             ("layer_norm.", "self_attn_layer_norm."), ("final_layer_norm.", "final_layer_norm."),
             ("feed_forward.intermediate_dense.", "fc1."), ("feed_forward.output_dense.", "fc2.")]
    for key, value in sd.items():
        if key in fixed:
            out[fixed[key]] = value.clone()
        elif m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d)\.conv\.weight", key):
            out[f"feature_extractor.conv_layers.{m[1]}.0.weight"] = value.clone()
        elif m := re.fullmatch(r"encoder\.transformer\.layers\.(\d+)\.(.+)", key):
            prefix, rest = f"encoder.layers.{m[1]}.", m[2]
            if rest.startswith("attention.attention.in_proj_"):
                _split_in_proj(prefix + "self_attn.", rest.rsplit("_", 1)[1], value, out)
                continue
            old, new = next((o, n) for o, n in inner if rest.startswith(o))
            out[prefix + new + rest[len(old):]] = value.clone()
        else:
            raise AssertionError(f"test mapping lacks {key}")
    return out


def to_huggingface(sd: dict, prefix: str = "", weight_norm: str = "old") -> dict:
    """torchaudio -> transformers WavLMModel names (modeling_wavlm.py), weight norm as weight_g/_v ('old')
    or parametrizations ('new')."""
    out = {prefix + "masked_spec_embed": torch.rand(768)}
    for key, value in sd.items():
        if key.startswith("feature_extractor."):
            name = key
        elif key.startswith("encoder.feature_projection."):
            name = key[len("encoder."):]
        elif m := re.fullmatch(r"encoder\.transformer\.layers\.(\d+)\.attention\.attention\.in_proj_(\w+)", key):
            _split_in_proj(f"{prefix}encoder.layers.{m[1]}.attention.", m[2], value, out)
            continue
        else:
            name = "encoder." + key[len("encoder.transformer."):].replace("attention.attention.out_proj",
                                                                           "attention.out_proj")
            if weight_norm == "old":
                name = name.replace("parametrizations.weight.original0", "weight_g").replace(
                    "parametrizations.weight.original1", "weight_v")
        out[prefix + name] = value.clone()
    return out


# literal checks: (file key, torchaudio key, slice of the torchaudio tensor it must equal)
LITERAL = {
    "microsoft": [
        ("feature_extractor.conv_layers.0.0.weight", "feature_extractor.conv_layers.0.conv.weight", None),
        ("feature_extractor.conv_layers.0.2.bias", "feature_extractor.conv_layers.0.layer_norm.bias", None),
        ("feature_extractor.conv_layers.6.0.weight", "feature_extractor.conv_layers.6.conv.weight", None),
        ("layer_norm.weight", "encoder.feature_projection.layer_norm.weight", None),
        ("post_extract_proj.weight", "encoder.feature_projection.projection.weight", None),
        ("encoder.pos_conv.0.weight_g", "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0",
         None),
        ("encoder.layer_norm.bias", "encoder.transformer.layer_norm.bias", None),
        ("encoder.layers.0.self_attn.relative_attention_bias.weight",
         "encoder.transformer.layers.0.attention.rel_attn_embed.weight", None),
        ("encoder.layers.3.self_attn.k_proj.weight", "encoder.transformer.layers.3.attention.attention.in_proj_weight",
         slice(768, 1536)),
        ("encoder.layers.11.self_attn.v_proj.bias", "encoder.transformer.layers.11.attention.attention.in_proj_bias",
         slice(1536, 2304)),
        ("encoder.layers.5.self_attn.grep_a", "encoder.transformer.layers.5.attention.gru_rel_pos_const", None),
        ("encoder.layers.5.self_attn.grep_linear.weight",
         "encoder.transformer.layers.5.attention.gru_rel_pos_linear.weight", None),
        ("encoder.layers.7.self_attn_layer_norm.weight", "encoder.transformer.layers.7.layer_norm.weight", None),
        ("encoder.layers.7.fc1.weight", "encoder.transformer.layers.7.feed_forward.intermediate_dense.weight", None),
        ("encoder.layers.7.fc2.bias", "encoder.transformer.layers.7.feed_forward.output_dense.bias", None),
    ],
    "huggingface": [
        ("wavlm.feature_extractor.conv_layers.0.conv.weight", "feature_extractor.conv_layers.0.conv.weight", None),
        ("wavlm.feature_extractor.conv_layers.0.layer_norm.weight",
         "feature_extractor.conv_layers.0.layer_norm.weight", None),
        ("wavlm.feature_projection.projection.bias", "encoder.feature_projection.projection.bias", None),
        ("wavlm.encoder.pos_conv_embed.conv.weight_v",
         "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1", None),
        ("wavlm.encoder.layers.0.attention.rel_attn_embed.weight",
         "encoder.transformer.layers.0.attention.rel_attn_embed.weight", None),
        ("wavlm.encoder.layers.2.attention.q_proj.weight",
         "encoder.transformer.layers.2.attention.attention.in_proj_weight", slice(0, 768)),
        ("wavlm.encoder.layers.2.attention.out_proj.weight",
         "encoder.transformer.layers.2.attention.attention.out_proj.weight", None),
        ("wavlm.encoder.layers.9.attention.gru_rel_pos_const",
         "encoder.transformer.layers.9.attention.gru_rel_pos_const", None),
        ("wavlm.encoder.layers.9.feed_forward.intermediate_dense.weight",
         "encoder.transformer.layers.9.feed_forward.intermediate_dense.weight", None),
    ],
}


@pytest.fixture(scope="module")
def source():
    """A random Base model whose every tensor differs (LayerNorms, gates and biases too: a swap would show)."""
    torch.manual_seed(0)
    model = W.build_wavlm().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    with torch.inference_mode():
        out = model(wave[None])[0]
    return model, wave, out


def _roundtrip(tmp_path, source, file_state, name):
    model, wave, expected = source
    torch.save(file_state, tmp_path / name)
    loaded = W.load_wavlm(tmp_path / name)
    assert not loaded.training
    with torch.inference_mode():
        got = loaded(wave[None])[0]
    assert torch.equal(got, expected)
    mine, theirs = loaded.state_dict(), model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs)
    return loaded


def _check_literal(loaded, file_state, layout):
    mine = loaded.state_dict()
    for file_key, key, part in LITERAL[layout]:
        target = mine[key] if part is None else mine[key][part]
        assert torch.equal(target, file_state[file_key]), file_key


def test_torchaudio_layout(tmp_path, source):
    _roundtrip(tmp_path, source, {k: v.clone() for k, v in source[0].state_dict().items()}, "ta.pt")


def test_microsoft_layout(tmp_path, source):
    state = to_microsoft(source[0].state_dict())
    assert len(state) == 1 + 199 + 12 * 4  # + mask_emb; in_proj w/b split into 3 each
    loaded = _roundtrip(tmp_path, source, {"cfg": dict(BASE_PLUS_CFG), "model": state}, "WavLM-Base+.pt")
    _check_literal(loaded, state, "microsoft")


def test_huggingface_layout_prefixed_old_weight_norm(tmp_path, source):
    state = to_huggingface(source[0].state_dict(), prefix="wavlm.")
    loaded = _roundtrip(tmp_path, source, state, "pytorch_model.bin")
    _check_literal(loaded, state, "huggingface")


def test_huggingface_layout_parametrized_weight_norm(tmp_path, source):
    state = to_huggingface(source[0].state_dict(), weight_norm="new")
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in state
    _roundtrip(tmp_path, source, state, "hf.bin")


def test_layout_detection():
    assert W.detect_layout({"encoder.transformer.layer_norm.weight": 0}) == "torchaudio"
    assert W.detect_layout({"feature_projection.projection.weight": 0}) == "huggingface"
    assert W.detect_layout({"post_extract_proj.weight": 0}) == "microsoft"
    with pytest.raises(ValueError, match=r"unrecognised key layout \(first keys \['decoder.x'\]\)"):
        W.detect_layout({"decoder.x": 0})
    t = torch.zeros(2)
    mapped = W.to_torchaudio({"quantizer.codevectors": t, "masked_spec_embed": t, "encoder.layer_norm.bias": t},
                             "huggingface")  # pre-training tensors are skipped, not unknown
    assert list(mapped) == ["encoder.transformer.layer_norm.bias"]


def test_unknown_missing_and_foreign_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights at .*nothere.pt.*WavLM-Base\\+.pt"):
        W.load_wavlm(tmp_path / "nothere.pt")
    small = {"post_extract_proj.weight": torch.zeros(768, 512), "encoder.layers.0.self_attn.bogus": torch.zeros(1)}
    torch.save({"cfg": {}, "model": small}, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown microsoft key\(s\): \['encoder.layers.0.self_attn.bogus'\]"):
        W.load_wavlm(tmp_path / "unknown.pt")
    torch.save({"cfg": {}, "model": {"post_extract_proj.weight": torch.zeros(768, 512)}}, tmp_path / "few.pt")
    with pytest.raises(ValueError, match=r"missing 198 key\(s\) \[.feature_extractor.conv_layers.0.layer_norm.weight."):
        W.load_wavlm(tmp_path / "few.pt")
    torch.save({"model": {"encoder.layers.0.self_attn.q_proj.weight": torch.zeros(1)}}, tmp_path / "qk.pt")
    with pytest.raises(ValueError, match=r"missing encoder.transformer.layers.0.attention.k_proj.weight"):
        W.load_wavlm(tmp_path / "qk.pt")
    torch.save({"cfg": dict(BASE_PLUS_CFG, encoder_layers=24), "model": {}}, tmp_path / "large.pt")
    with pytest.raises(ValueError, match=r"cfg encoder_layers=24, expected 12"):
        W.load_wavlm(tmp_path / "large.pt")
    torch.save({"cfg": argparse.Namespace(a=1), "model": {}}, tmp_path / "pickle.pt")
    with pytest.raises(ValueError, match="not loadable as plain tensors"):
        W.load_wavlm(tmp_path / "pickle.pt")


def test_chunks():
    assert W.chunks(40000, 16000) == [(0, 16000), (16000, 40000)]  # a 0.5-s tail joins the last chunk
    assert W.chunks(51200, 16000) == [(0, 16000), (16000, 32000), (32000, 51200)]
    assert W.chunks(64000, 16000) == [(0, 16000), (16000, 32000), (32000, 48000), (48000, 64000)]
    assert W.chunks(400, 480000) == [(0, 400)]


def test_embed_is_mean_of_last_layer_frames(source):
    model, wave, expected = source
    rng = np.random.default_rng(1)
    waves = [wave.numpy(), (0.1 * rng.standard_normal(8000)).astype(np.float32), wave.numpy()[::-1].copy(),
             (0.1 * rng.standard_normal(100)).astype(np.float32)]
    out = W.wavlm_embed(model, waves)
    assert out.shape == (4, 768) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected[0].mean(0).numpy(), rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        for i in (1, 2, 3):
            padded = np.pad(waves[i], (0, max(0, 400 - len(waves[i]))))  # 100 samples -> one 400-sample frame
            frames = model(torch.from_numpy(padded)[None])[0][0]
            np.testing.assert_allclose(out[i], frames.mean(0).numpy(), rtol=1e-5, atol=1e-5)
    assert W.wavlm_embed(model, []).shape == (0, 768)


def test_embed_chunks_long_waves(source):
    model = source[0]
    wave = (0.1 * np.random.default_rng(2).standard_normal(32000)).astype(np.float32)  # 2 s in 1-s chunks
    out = W.wavlm_embed(model, [wave], chunk_seconds=1.0)
    with torch.inference_mode():
        frames = torch.cat([model(torch.from_numpy(wave[s:e])[None])[0][0] for s, e in [(0, 16000), (16000, 32000)]])
        whole = model(torch.from_numpy(wave)[None])[0][0].mean(0).numpy()
    assert np.abs(out[0] - whole).max() > 1e-3  # chunking is visible: attention does not cross the cut
    np.testing.assert_allclose(out[0], frames.mean(0).numpy(), rtol=1e-5, atol=1e-5)


def test_base_plus_is_torchaudio_base_architecture():
    bundle = torchaudio.pipelines.WAVLM_BASE_PLUS
    params = bundle._params
    assert params["encoder_num_layers"] == W.NUM_LAYERS and params["encoder_embed_dim"] == W.WIDTH
    assert (params["encoder_num_buckets"], params["encoder_max_distance"]) == (320, 800)
    assert params["extractor_mode"] == "group_norm" and not params["encoder_layer_norm_first"]
    assert not bundle._normalize_waveform
