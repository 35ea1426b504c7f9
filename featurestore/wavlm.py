"""WavLM Base+ (the paper's self-supervised speech baseline, SPEC §3) on torchaudio's WavLM network.

Network: `torchaudio.models.wavlm_base` with every dropout off. Base+ and Base share one architecture
(group-norm conv extractor, 12 post-norm layers of 768, 12 heads, 3,072 FFN, conv positions 128/16, 320
relative-position buckets, max distance 800, gated relative positions): torchaudio's own WAVLM_BASE_PLUS
bundle builds it with exactly these parameters and without waveform normalisation (the Microsoft config's
`normalize: False`), so the raw 16 kHz waveform goes in as it is.

Weights come from a local file in any of three key layouts, detected from the keys:
- `microsoft`: the original `WavLM-Base+.pt`, `{"cfg": {...}, "model": state_dict}` (microsoft/unilm
  wavlm/WavLM.py, modules.py: fairseq names `feature_extractor.conv_layers.0.0.weight`, `layer_norm`,
  `post_extract_proj`, `encoder.pos_conv.0.weight_g/_v`, `self_attn.{q,k,v,out}_proj`,
  `self_attn.relative_attention_bias`, `self_attn.grep_linear`, `self_attn.grep_a`, `fc1`, `fc2`, ...);
- `torchaudio`: this network's own state_dict (`encoder.transformer.layers.0.attention.attention.in_proj_weight`);
- `huggingface`: `microsoft/wavlm-base-plus` `pytorch_model.bin` (transformers modeling_wavlm.py:
  `feature_projection`, `encoder.pos_conv_embed.conv.weight_g/_v` or `.parametrizations.weight.original0/1`,
  `attention.{q,k,v,out}_proj`, `attention.gru_rel_pos_linear`, ...), with or without a `wavlm.` prefix.
Separate q/k/v projections are concatenated (q, k, v) into torch MultiheadAttention's `in_proj`, as
torchaudio's import_huggingface does. The masking embedding (`mask_emb`, `masked_spec_embed`) and pre-training heads
(`final_proj`, `quantizer`, ...) are training-only and skipped; any other unknown or missing key is an error.

Embedding (SPEC §3): the last transformer layer's output, mean over frames. A wave longer than 30 s is cut
into non-overlapping 30-s chunks (the last one takes a tail shorter than 1 s rather than leaving it alone),
each chunk runs on its own (attention memory grows with the square of the length), and the mean is over
all chunks' frames together. A wave shorter than one frame's receptive field (400 samples) is zero-padded
to it. Waves of equal length are batched together (no padding, so no attention masks).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torchaudio
from torchaudio.models import Wav2Vec2Model

log = logging.getLogger(__name__)

WIDTH = 768
NUM_LAYERS = 12
CHUNK_SECONDS = 30.0  # longest piece of a wave that goes through the network at once
MIN_TAIL_SECONDS = 1.0  # a last chunk shorter than this joins the chunk before it
MIN_SAMPLES = 400  # receptive field of one output frame of the conv extractor (25 ms)
BATCH_SECONDS = 64.0  # audio per forward pass when equal-length waves are batched
SAMPLE_RATE = 16000
# training-only tensors no embedding uses: the masking embeddings, and pre-training heads a checkpoint may carry
IGNORED = re.compile(r"mask_emb|masked_spec_embed|label_embs_concat|(final_proj|project_q|project_hid|quantizer)\..+")
# Architectural fields of the Microsoft cfg: the value Base+ has (a file whose cfg differs is not Base+)
BASE_PLUS_CFG = {"extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
                 "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "activation_fn": "gelu",
                 "layer_norm_first": False, "conv_bias": False, "normalize": False, "conv_pos": 128,
                 "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320,
                 "max_distance": 800, "gru_rel_pos": True}  # conv kernels and widths: checked by the shapes

_T = "encoder.transformer"
_L = _T + r".layers.\1"
_G = _T + ".pos_conv_embed.conv.parametrizations.weight.original"  # 0: weight_g, 1: weight_v
# (pattern, replacement) per layout, each pattern matched against the whole key
_MICROSOFT = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", r"feature_extractor.conv_layers.\1.conv.weight"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"layer_norm\.(weight|bias)", r"encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"encoder.feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", _T + ".pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", _G + "0"),
    (r"encoder\.pos_conv\.0\.weight_v", _G + "1"),
    (r"encoder\.layer_norm\.(weight|bias)", _T + r".layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight", _L + ".attention.rel_attn_embed.weight"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_linear\.(weight|bias)", _L + r".attention.gru_rel_pos_linear.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_a", _L + ".attention.gru_rel_pos_const"),
    (r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", _L + r".attention.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", _L + r".attention.attention.out_proj.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", _L + r".layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", _L + r".feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", _L + r".feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", _L + r".final_layer_norm.\2"),
]
_HUGGINGFACE = [
    (r"(feature_extractor\.conv_layers\.\d+\.(conv|layer_norm)\.(weight|bias))", r"\1"),
    (r"feature_projection\.(layer_norm|projection)\.(weight|bias)", r"encoder.feature_projection.\1.\2"),
    (r"encoder\.pos_conv_embed\.conv\.bias", _T + ".pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_g|parametrizations\.weight\.original0)",
     _G + "0"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_v|parametrizations\.weight\.original1)",
     _G + "1"),
    (r"encoder\.layer_norm\.(weight|bias)", _T + r".layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(rel_attn_embed\.weight|gru_rel_pos_const|gru_rel_pos_linear\.weight"
     r"|gru_rel_pos_linear\.bias|[qkv]_proj\.weight|[qkv]_proj\.bias)", _L + r".attention.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.out_proj\.(weight|bias)", _L + r".attention.attention.out_proj.\2"),
    (r"encoder\.layers\.(\d+)\.(layer_norm|final_layer_norm|feed_forward\.intermediate_dense"
     r"|feed_forward\.output_dense)\.(weight|bias)", _L + r".\2.\3"),
]
_TORCHAUDIO = [  # identity, plus the pre-parametrization weight_norm names of older torchaudio
    (r"encoder\.transformer\.pos_conv_embed\.conv\.weight_g", _G + "0"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.weight_v", _G + "1"),
    (r"((feature_extractor|encoder)\..+)", r"\1"),
]
LAYOUTS = {"microsoft": _MICROSOFT, "torchaudio": _TORCHAUDIO, "huggingface": _HUGGINGFACE}


def build_wavlm() -> Wav2Vec2Model:
    """The Base+ network, randomly initialised, every dropout and layer drop off (inference only)."""
    return torchaudio.models.wavlm_base(encoder_projection_dropout=0.0, encoder_attention_dropout=0.0,
                                        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_drop=0.0)


def detect_layout(state: Mapping[str, object]) -> str:
    """Which of LAYOUTS a state_dict's keys follow (keys already stripped of a `wavlm.` prefix)."""
    keys = list(state)
    if any(k.startswith("encoder.transformer.") for k in keys):
        return "torchaudio"
    if any(k.startswith(("feature_projection.", "encoder.pos_conv_embed.")) for k in keys):
        return "huggingface"
    if any(k.startswith(("post_extract_proj.", "encoder.pos_conv.")) for k in keys):
        return "microsoft"
    raise ValueError(f"wavlm: unrecognised key layout (first keys {keys[:3]}); expected the Microsoft .pt, "
                     "a torchaudio state_dict or the Hugging Face pytorch_model.bin")


def to_torchaudio(state: Mapping[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Rename `state` (of `layout`) into torchaudio's keys; q/k/v fused into in_proj. Unknown keys raise."""
    rules = [(re.compile(p), r) for p, r in LAYOUTS[layout]]
    out: dict[str, torch.Tensor] = {}
    unknown, ignored = [], []
    for key, tensor in state.items():
        if IGNORED.fullmatch(key):
            ignored.append(key)
            continue
        for pattern, replacement in rules:
            if pattern.fullmatch(key):
                out[pattern.sub(replacement, key)] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"wavlm: {len(unknown)} unknown {layout} key(s): {unknown[:4]}")
    if ignored:
        log.info("wavlm: skipped %d training-only tensor(s): %s", len(ignored), ignored[:4])
    qkv = re.compile(r"(.+\.attention)\.([qkv])_proj\.(weight|bias)")
    groups = sorted({m[1] + "|" + m[3] for m in map(qkv.fullmatch, out) if m})
    for group in groups:
        prefix, kind = group.split("|")
        names = [f"{prefix}.{n}_proj.{kind}" for n in "qkv"]
        absent = [n for n in names if n not in out]
        if absent:
            raise ValueError(f"wavlm: {layout}: missing {absent[0]} (q, k and v are fused into in_proj_{kind})")
        out[f"{prefix}.attention.in_proj_{kind}"] = torch.cat([out.pop(n) for n in names])
    return out


def _check_cfg(cfg: Mapping[str, object], path: Path) -> None:
    for name, expected in BASE_PLUS_CFG.items():
        if name in cfg and cfg[name] != expected:
            raise ValueError(f"wavlm: {path}: cfg {name}={cfg[name]!r}, expected {expected!r} (WavLM Base+)")


def load_wavlm(path: str | os.PathLike) -> Wav2Vec2Model:
    """WavLM Base+ (CPU, eval mode) from a Microsoft, torchaudio or Hugging Face file; a file never runs code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wavlm: no weights at {path}; weights are never downloaded: put WavLM-Base+.pt "
                                "(microsoft/unilm) or microsoft/wavlm-base-plus pytorch_model.bin there")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickles of classes (a fairseq checkpoint) are refused, never run
        raise ValueError(f"wavlm: {path}: not loadable as plain tensors (torch.load weights_only): "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"wavlm: {path}: expected a state_dict or {{'cfg', 'model'}}, got {type(obj).__name__}")
    if isinstance(obj.get("model"), Mapping):
        _check_cfg(obj.get("cfg") or {}, path)
        state, layout = obj["model"], "microsoft"
    else:
        state = {k[len("wavlm."):] if k.startswith("wavlm.") else k: v for k, v in obj.items()}
        layout = detect_layout(state)
    mapped = to_torchaudio(state, layout)
    model = build_wavlm()
    expected = model.state_dict()
    missing = [k for k in expected if k not in mapped]
    unknown = [k for k in mapped if k not in expected]
    if missing or unknown:
        raise ValueError(f"wavlm: {path} ({layout} layout): missing {len(missing)} key(s) {missing[:4]}, "
                         f"unknown {len(unknown)} {unknown[:4]}")
    for key, tensor in mapped.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(f"wavlm: {path} ({layout} layout): {key} has shape {tuple(tensor.shape)}, "
                             f"expected {tuple(expected[key].shape)}")
    model.load_state_dict(mapped)
    log.info("wavlm: loaded %s (%s layout, %d tensors)", path, layout, len(mapped))
    return model.eval()


def chunks(n: int, chunk_samples: int) -> list[tuple[int, int]]:
    """[start, end) spans of a wave of n samples: chunk_samples each, a short tail joining the last one."""
    spans = [(s, min(s + chunk_samples, n)) for s in range(0, n, chunk_samples)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < MIN_TAIL_SECONDS * SAMPLE_RATE:
        spans[-2:] = [(spans[-2][0], n)]
    return spans


def wavlm_embed(model: Wav2Vec2Model, waves: list[np.ndarray], chunk_seconds: float = CHUNK_SECONDS) -> np.ndarray:
    """(len(waves), 768) float32: the last layer's frames, averaged over every frame of the wave."""
    device = next(model.parameters()).device
    out = np.zeros((len(waves), WIDTH), np.float32)
    chunk_samples = int(chunk_seconds * SAMPLE_RATE)
    pieces: list[tuple[int, np.ndarray]] = []  # (wave index, piece)
    for i, wave in enumerate(waves):
        wave = np.asarray(wave, np.float32)
        if len(wave) < MIN_SAMPLES:
            wave = np.pad(wave, (0, MIN_SAMPLES - len(wave)))
        pieces += [(i, wave[s:e]) for s, e in chunks(len(wave), chunk_samples)]
    sums = torch.zeros(len(waves), WIDTH, dtype=torch.float64)
    frames = torch.zeros(len(waves), dtype=torch.float64)
    order = sorted(range(len(pieces)), key=lambda j: -len(pieces[j][1]))
    start = 0
    with torch.inference_mode():
        while start < len(order):
            length = len(pieces[order[start]][1])
            per_batch = max(1, int(BATCH_SECONDS * SAMPLE_RATE) // length)
            end = start
            while end < len(order) and end - start < per_batch and len(pieces[order[end]][1]) == length:
                end += 1
            chosen = order[start:end]
            batch = torch.from_numpy(np.stack([pieces[j][1] for j in chosen])).to(device)
            hidden, _ = model(batch)  # (B, T, 768): the last layer (post-norm: no final LayerNorm)
            batch_sums = hidden.double().sum(1).cpu()
            for row, j in enumerate(chosen):
                sums[pieces[j][0]] += batch_sums[row]
                frames[pieces[j][0]] += hidden.shape[1]
            start = end
    out[:] = (sums / frames[:, None]).float().numpy()
    return out
