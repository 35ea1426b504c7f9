"""Official BYOL-A v1 checkpoint files -> our `Encoder`, checked key by key before anything is loaded.

The files are plain state_dicts (sometimes under a prefix such as `module.` or `model.`). They are read with
`torch.load(weights_only=True)`, so a checkpoint file can never run code. Their licence forbids shipping
them: tests write a file in exactly this layout. Foreign weights carry no normalisation stats, so the caller
must supply the stats the weights were trained with (see `require_stats`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.models import Encoder, ModelConfig

V1_DIMS = (512, 1024, 2048)  # the widths the BYOL-A authors published v1 weights for
_BN = ("weight", "bias", "running_mean", "running_var")


def v1_shapes(d: int, channels: int = 64, n_mels: int = 64) -> dict[str, tuple[int, ...]]:
    """Every tensor of an official v1 state_dict (BatchNorm's `num_batches_tracked` is optional)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for block, (conv, bn) in enumerate(((0, 1), (4, 5), (8, 9))):
        shapes[f"features.{conv}.weight"] = (channels, 1 if block == 0 else channels, 3, 3)
        shapes[f"features.{conv}.bias"] = (channels,)
        shapes.update({f"features.{bn}.{name}": (channels,) for name in _BN})
    conv_dim = channels * (n_mels // 8)
    shapes.update({"fc.0.weight": (d, conv_dim), "fc.0.bias": (d,), "fc.3.weight": (d, d), "fc.3.bias": (d,)})
    return shapes


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop one common wrapper prefix (`module.`, `model.`, `encoder.`...) so keys start at `features.`."""
    anchor = next((k for k in state if ".features.0.weight" in k or k == "features.0.weight"), None)
    if anchor is None or anchor == "features.0.weight":
        return state
    prefix = anchor[: anchor.index("features.0.weight")]
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_v1(path: str | Path) -> Encoder:
    """An official v1 file as an `Encoder(ModelConfig(arch="v1", d=...))`, d read from `fc.0.weight`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r}: no such checkpoint file; put the BYOL-A v1 .pth file there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors of a foreign file are the user's input
        raise ValueError(f"{str(path)!r}: not a loadable weights-only torch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r}: expected a state_dict (names -> tensors)")
    state = {k: v for k, v in _strip_prefix(state).items() if not k.endswith("num_batches_tracked")}
    fc0 = state.get("fc.0.weight")
    d = int(fc0.shape[0]) if fc0 is not None and fc0.dim() == 2 else None
    if d not in V1_DIMS:
        raise ValueError(f"{str(path)!r}: fc.0.weight gives d={d}; BYOL-A v1 files have d in {V1_DIMS}")
    expected = v1_shapes(d)
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unknown or wrong:
        detail = "; ".join(f"{label}: {names[:6]}{' ...' if len(names) > 6 else ''}" for label, names in
                           (("missing", missing), ("unknown", unknown), ("wrong shape", wrong)) if names)
        raise ValueError(f"{str(path)!r}: not a BYOL-A v1 (d={d}) state_dict ({detail})")
    encoder = Encoder(ModelConfig(arch="v1", d=d))
    encoder.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    return encoder


def require_stats(mean: float | None, std: float | None, where: str) -> tuple[float, float]:
    """Foreign weights need the normalisation stats they were trained with: refuse without them."""
    if mean is None or std is None:
        raise ValueError(f"{where}: foreign weights carry no normalisation stats; give --norm-mean and --norm-std "
                         "(the statistics the weights were trained with) or a stats file")
    if not (std > 0 and mean == mean):
        raise ValueError(f"{where}: norm stats mean={mean}, std={std}: std must be > 0 and mean a number")
    return float(mean), float(std)
