"""YAMNet (the paper's AudioSet-supervised baseline, SPEC §3) in torch, converted from the official Keras file.

The reference is tensorflow/models `research/audioset/yamnet` (yamnet.py, params.py, features.py); this is a
re-implementation, not a copy, and every choice below is the reference's:

- Front end (features.py): `pad_waveform`, then `tf.signal.stft` with a 400-sample (25 ms) periodic Hann
  window, a 160-sample (10 ms) hop, no end padding and a 512-point FFT (the next power of two of 400);
  magnitude; `tf.signal.linear_to_mel_weight_matrix` (64 HTK-mel bands, 125-7500 Hz, triangles linear in
  *mel*, DC bin zeroed: librosa's `htk=True` triangles are linear in Hz and differ); `log(mel + 0.001)`;
  framed into 96x64 patches (0.96 s) at a 48-frame (0.48 s) hop, complete patches only.
- Padding (`pad_waveform`): a wave is zero-padded at the end to at least 15,600 samples (0.96 s + 25 ms -
  10 ms: exactly one patch) and then up to a whole number of 7,680-sample patch hops past the first patch,
  so every wave gives at least one patch and no tail is dropped: 0.5 s -> 1 patch, 1 s -> 2 (the second
  mostly padding), 3 s -> 6. The SPEC's own 1-s minimum is the caller's (featurestore.models) to apply.
- Network (yamnet.py `_YAMNET_LAYER_DEFS`): MobileNetV1, a 3x3 stride-2 conv then 13 depthwise-separable
  blocks, each conv without bias, then BatchNorm (eps 1e-4, center=True, scale=False: no gamma) and ReLU;
  Keras "same" padding, which for a stride-2 conv on an even size pads one row/column at the end only
  (`same_padding`); global average pooling -> the 1,024-d patch embedding; Dense(521) logits.
- Embedding of a wave (SPEC §3): the mean of its patch embeddings.

The official `yamnet.h5` (Keras 2 `save_weights` HDF5) is converted once with `convert_keras_h5` into a torch
state_dict; `load_yamnet` reads only that (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms STFT window (params.stft_window_seconds)
HOP = 160  # 10 ms STFT hop (params.stft_hop_seconds)
FFT = 512  # 2 ** ceil(log2(WINDOW)), as features.py computes it
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s of 10-ms frames
PATCH_HOP_FRAMES = 48  # 0.48 s
MIN_SAMPLES = 15600  # int((0.96 + 0.025 - 0.010) * 16000): one patch's worth of waveform
PATCH_HOP_SAMPLES = 7680  # int(0.48 * 16000)
BN_EPS = 1e-4  # params.batchnorm_epsilon
NUM_CLASSES = 521
WIDTH = 1024
BATCH_PATCHES = 512  # patches per forward pass
# (kind, stride, filters) of layer1..layer14, kernel 3x3 throughout (yamnet.py _YAMNET_LAYER_DEFS)
LAYERS = (("conv", 2, 32), ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256), ("sep", 1, 256),
          ("sep", 2, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512),
          ("sep", 2, 1024), ("sep", 1, 1024))
_CONVERT_HINT = "convert the official yamnet.h5 with `python -m featurestore convert-yamnet yamnet.h5 {path}`"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF/Keras "same": output ceil(size / stride), the odd pixel at the end.

    torch's padding="same" is symmetric and refuses stride 2, so the TF arithmetic is written out."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _ConvBN(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU with TF "same" padding computed from the input's size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
        x = F.pad(x, (left, right, top, bottom))
        return F.relu(self.bn(self.conv(x)))


class _Separable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.depthwise = _ConvBN(cin, cin, 3, stride, groups=cin)
        self.pointwise = _ConvBN(cin, cout, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class YAMNet(nn.Module):
    """The YAMNet network on log-mel patches: (N, 96, 64) -> (N, 1024) embeddings (`logits` for classes)."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for kind, stride, filters in LAYERS:
            layers.append(_ConvBN(cin, filters, 3, stride) if kind == "conv" else _Separable(cin, filters, stride))
            cin = filters
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Linear(WIDTH, NUM_CLASSES)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = patches.unsqueeze(1)  # NHWC (96 frames, 64 bands, 1) in Keras is N1HW here
        for layer in self.layers:
            x = layer(x)
        return x.mean(dim=(2, 3))

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        return self.classifier(self(patches))


# ---- front end ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """(257, 64) float32 weights as tf.signal.linear_to_mel_weight_matrix builds them (in float64 here: TF's
    float32 arithmetic differs by ~1e-7). Cached: callers must not modify it."""
    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1)[1:])[:, None]  # DC bin excluded
    edges = np.linspace(to_mel(MEL_LOW_HZ), to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower), (upper - bins_mel) / (upper - center)))
    return np.pad(weights, ((1, 0), (0, 0))).astype(np.float32)


def pad_waveform(wave: np.ndarray) -> np.ndarray:
    """features.pad_waveform: at least one patch, then a whole number of patch hops (zeros at the end)."""
    n = max(len(wave), MIN_SAMPLES)
    hops = math.ceil((n - MIN_SAMPLES) / PATCH_HOP_SAMPLES)
    target = MIN_SAMPLES + hops * PATCH_HOP_SAMPLES
    return np.pad(np.asarray(wave, np.float32), (0, target - len(wave)))


def log_mel(wave: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(frames, 64) float32 log-mel spectrogram of an (already padded) wave, as features.py computes it."""
    x = torch.as_tensor(np.asarray(wave, np.float32), device=device)
    frames = x.unfold(0, WINDOW, HOP)  # no end padding (tf.signal.stft pad_end=False)
    window = torch.hann_window(WINDOW, periodic=True, device=device)
    magnitude = torch.fft.rfft(frames * window, n=FFT).abs()
    mel = magnitude @ torch.as_tensor(mel_matrix(), device=device)
    return torch.log(mel + LOG_OFFSET)


def patches(spectrogram: torch.Tensor) -> torch.Tensor:
    """(P, 96, 64) complete patches at a 48-frame hop (tf.signal.frame, no end padding)."""
    return spectrogram.unfold(0, PATCH_FRAMES, PATCH_HOP_FRAMES).transpose(1, 2)


def wave_patches(wave: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    return patches(log_mel(pad_waveform(wave), device))


def yamnet_embed(model: YAMNet, waves: list[np.ndarray]) -> np.ndarray:
    """(len(waves), 1024) float32: per wave, the mean of its patch embeddings (patches of all waves are
    batched together; each patch is independent, so batching does not change a wave's embedding)."""
    device = next(model.parameters()).device
    out = np.zeros((len(waves), WIDTH), np.float32)
    if not waves:
        return out
    per_wave = [wave_patches(w, device) for w in waves]
    counts = [len(p) for p in per_wave]
    with torch.inference_mode():
        stacked = torch.cat(per_wave)
        emb = torch.cat([model(stacked[i:i + BATCH_PATCHES]) for i in range(0, len(stacked), BATCH_PATCHES)])
    for i, chunk in enumerate(torch.split(emb, counts)):
        out[i] = chunk.mean(0).float().cpu().numpy()
    return out


# ---- weights -----------------------------------------------------------------------------------------

def load_yamnet(path: str | os.PathLike) -> YAMNet:
    """The network (CPU, eval mode) from our converted state_dict; a file never runs code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"yamnet: no weights at {path}; weights are never downloaded: "
                                + _CONVERT_HINT.format(path=path))
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ValueError(f"yamnet: {path} is the Keras file; " + _CONVERT_HINT.format(path=path.with_suffix(".pt")))
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = YAMNet()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        raise ValueError(f"yamnet: {path}: not a converted YAMNet state_dict (missing {missing[:3]}, "
                         f"unknown {unknown[:3]})")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"yamnet: {path}: {name} has shape {tuple(tensor.shape)}, "
                             f"expected {tuple(expected[name].shape)}")
    model.load_state_dict(state)
    return model.eval()


def _keras_layers() -> dict[str, tuple[str, str]]:
    """Keras layer name -> (torch module prefix, kind) for every layer of the official model with weights."""
    names: dict[str, tuple[str, str]] = {}
    for i, (kind, _, _) in enumerate(LAYERS):
        k = f"layer{i + 1}"
        parts = [("conv", f"layers.{i}")] if kind == "conv" else \
            [("depthwise_conv", f"layers.{i}.depthwise"), ("pointwise_conv", f"layers.{i}.pointwise")]
        for keras, prefix in parts:
            names[f"{k}/{keras}"] = (f"{prefix}.conv", "depthwise" if keras == "depthwise_conv" else "conv")
            names[f"{k}/{keras}/bn"] = (f"{prefix}.bn", "bn")
    return names


def _attr(group, name: str) -> list[str]:
    """A Keras string-list attribute, which Keras splits into `name0`, `name1`, ... past 64 KB."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read_h5(h5_path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {weight kind ('kernel', 'beta', ...): array}} for the layers that hold weights, read the
    way Keras 2's load_weights does: root (or `model_weights`) attr `layer_names`, each layer group's attr
    `weight_names`, each weight a dataset at `<layer>/<weight name>` (names contain '/': nested groups)."""
    import h5py

    layers: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(h5_path, "r") as f:
        root = f["model_weights"] if not _attr(f, "layer_names") and "model_weights" in f else f
        names = _attr(root, "layer_names")
        if not names:
            raise ValueError(f"yamnet: {h5_path}: not a Keras 2 HDF5 weights file (no 'layer_names' attribute)")
        for layer in names:
            group = root[layer]
            weight_names = _attr(group, "weight_names")
            if weight_names:
                # 'layer1/conv/kernel:0' -> 'kernel' (the variable's own name, whatever scope precedes it)
                layers[layer] = {re.sub(r":\d+$", "", w.rsplit("/", 1)[-1]): np.asarray(group[w]) for w in weight_names}
    return layers


def convert_keras_h5(h5_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Convert the official Keras `yamnet.h5` into our torch state_dict at `out_path` (written atomically).

    Kernels go HWIO -> OIHW (Conv2D) and (H, W, C, 1) -> (C, 1, H, W) (DepthwiseConv2D); BatchNorm's beta,
    moving_mean, moving_variance map to bias, running_mean, running_var, and weight is 1 (scale=False: the
    file has no gamma; a gamma, if present, is used); the Dense kernel (1024, 521) is transposed."""
    h5_path, out_path = Path(h5_path), Path(out_path)
    if not h5_path.is_file():
        raise FileNotFoundError(f"yamnet: no Keras file at {h5_path}; weights are never downloaded: put the "
                                "official yamnet.h5 there")
    layers = _read_h5(h5_path)
    targets = _keras_layers()
    dense = [name for name in layers if re.fullmatch(r"dense(_\d+)?", name)]
    unknown = [name for name in layers if name not in targets and name not in dense]
    if unknown:
        raise ValueError(f"yamnet: {h5_path}: unknown layer {unknown[0]!r} (expected layer1..layer14 and one dense)")
    missing = [name for name in targets if name not in layers]
    if missing or len(dense) != 1:
        raise ValueError(f"yamnet: {h5_path}: missing layer {(missing or ['dense'])[0]!r}"
                         + (f" (found {len(dense)} dense layers: {dense})" if not missing else ""))
    state: dict[str, torch.Tensor] = {}
    for layer, (prefix, kind) in targets.items():
        state.update(_convert_layer(layers[layer], prefix, kind, f"{h5_path}: {layer}"))
    state.update(_convert_layer(layers[dense[0]], "classifier", "dense", f"{h5_path}: {dense[0]}"))
    expected = YAMNet().state_dict()
    for name, tensor in expected.items():
        if name not in state:
            state[name] = tensor  # only BatchNorm's num_batches_tracked, unused in eval
        elif state[name].shape != tensor.shape:
            raise ValueError(f"yamnet: {h5_path}: {name} has shape {tuple(state[name].shape)}, "
                             f"expected {tuple(tensor.shape)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out_path)
    log.info("yamnet: converted %s -> %s (%d tensors)", h5_path, out_path, len(state))
    return out_path


def _convert_layer(weights: dict[str, np.ndarray], prefix: str, kind: str, where: str) -> dict[str, torch.Tensor]:
    expected = {"conv": {"kernel"}, "depthwise": {"depthwise_kernel"}, "dense": {"kernel", "bias"},
                "bn": {"beta", "moving_mean", "moving_variance"}}[kind]
    allowed = expected | ({"gamma"} if kind == "bn" else set())
    if not expected <= set(weights) <= allowed:
        raise ValueError(f"yamnet: {where}: weights {sorted(weights)}, expected {sorted(expected)}")

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    if kind == "conv":
        return {f"{prefix}.weight": t(weights["kernel"].transpose(3, 2, 0, 1))}
    if kind == "depthwise":
        k = weights["depthwise_kernel"]  # (H, W, C, multiplier=1)
        return {f"{prefix}.weight": t(k.transpose(2, 3, 0, 1).reshape(-1, 1, k.shape[0], k.shape[1]))}
    if kind == "dense":
        return {f"{prefix}.weight": t(weights["kernel"].T), f"{prefix}.bias": t(weights["bias"])}
    beta = weights["beta"]
    return {f"{prefix}.weight": t(weights.get("gamma", np.ones_like(beta))), f"{prefix}.bias": t(beta),
            f"{prefix}.running_mean": t(weights["moving_mean"]), f"{prefix}.running_var": t(weights["moving_variance"])}
