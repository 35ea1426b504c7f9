"""The models the store embeds with, named by id (docs/store.md), each with a fingerprint.

- `run:<run>`: a pre-training run of ours (`DATA/models/<run>/encoder.pt`, its stats inside);
- `byola-v1:<path>`: an official BYOL-A v1 file; `byola-v2:random`, `byola-v1:random`: seeded random-init
  encoders of each architecture (first-class models: the study's controls); `byola-v2:random:tiny` is
  the random-init twin of a `tiny` run (the architecture of any packaged training config);
- `wavlm-base-plus:<path>` and `yamnet:<path>`: the paper's baselines, from local files only.

BYOL-A embeddings follow SPEC §3: the whole file's log-mel (files shorter than 1 s zero-padded to 1 s),
normalised with the model's stats, eval mode, max + mean over frames. Stats come from the run, or
`--norm-mean/--norm-std`, or a diet's stats file, or by default the dataset's train split (computed once
and stored under `store/stats/`); they are part of the fingerprint, as are the weights, the architecture,
the front end and the pooling. Pooling `windows` (each item embedded from its own audio: the reference)
keeps the fingerprint it always had; `frames` (windows of long recordings pooled from the recording's frame
features, `featurestore.frames`) adds its description, so the two are never mixed under one fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shards.frontend import BYOLA, FrontEnd, LogMel
from shards.storage import Root

log = logging.getLogger(__name__)

KINDS = ("run", "byola-v1", "byola-v2", "wavlm-base-plus", "yamnet")
POOLINGS = ("windows", "frames")  # per-item embedding (the reference) | frame pooling (featurestore.frames)
RANDOM_SEED = 0  # the init seed of `byola-*:random` encoders (torch.manual_seed before construction)
MIN_SECONDS = 1.0  # SPEC §3: files shorter than 1 s are zero-padded at the end to 1 s
BATCH_FRAMES = 96 * 256  # log-mel frames per forward pass (equal-length files are batched together)
_ID = re.compile(r"^(?P<kind>[a-z0-9-]+):(?P<arg>.+)$")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a worker needs to rebuild the model: the id and the resolved normalisation stats."""

    id: str
    mean: float | None = None
    std: float | None = None
    stats_source: str | None = None  # where the stats came from (run, flags, diet:<d>, train:<dataset>)
    pooling: str = "windows"  # POOLINGS: how window items are embedded (resolved by embed, in the fingerprint)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}, expected one of {POOLINGS}")


@dataclass
class StoreModel:
    spec: ModelSpec
    name: str  # the store's `model=` partition (docs/store.md)
    kind: str
    width: int
    network: Any = field(repr=False)
    sha: str = ""
    front_end: dict | None = None  # BYOL-A models: the log-mel front end (None: the model has its own)
    device: str = "cpu"

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(len(waves), width) float32 embeddings of 16 kHz mono float32 waves."""
        if not waves:
            return np.zeros((0, self.width), np.float32)
        minimum = int(MIN_SECONDS * 16_000)  # SPEC §3, for every model: shorter files zero-padded to 1 s
        waves = [w if len(w) >= minimum else np.pad(w, (0, minimum - len(w))) for w in waves]
        if self.kind == "wavlm-base-plus":
            from featurestore.wavlm import wavlm_embed

            return wavlm_embed(self.network, waves)
        if self.kind == "yamnet":
            from featurestore.yamnet import yamnet_embed

            return yamnet_embed(self.network, waves)
        return _byola_embed(self, waves)


def parse_id(model_id: str) -> tuple[str, str]:
    match = _ID.match(model_id.strip())
    if not match or match["kind"] not in KINDS:
        raise ValueError(f"model {model_id!r}: expected KIND:ARG with KIND one of {KINDS} "
                         "(run:<run>, byola-v1:<file>, byola-v2:random, wavlm-base-plus:<file>, yamnet:<file>)")
    return match["kind"], match["arg"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"


def _file(arg: str, kind: str) -> Path:
    path = Path(arg)
    if not path.is_file():
        where = {"byola-v1": "the BYOL-A v1 .pth file", "wavlm-base-plus": "WavLM-Base+.pt (or the Hugging Face "
                 "pytorch_model.bin)", "yamnet": "yamnet.pt (convert the official yamnet.h5 with "
                 "`python -m featurestore convert-yamnet yamnet.h5 yamnet.pt`)"}[kind]
        raise FileNotFoundError(f"{kind}: no file {arg!r}; weights are never downloaded: put {where} there")
    return path


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.nn.Module):
            for name, tensor in sorted(part.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _random_encoder(arch: str, config: str | None):
    from training.models import Encoder, ModelConfig

    if config is None:
        model_cfg = ModelConfig(arch=arch)
    else:
        from training.config import read_config_file

        keys = read_config_file(config)
        fields = {k: keys[k] for k in ("channels", "d", "dropout") if k in keys}
        model_cfg = ModelConfig(arch=arch, **fields)
    torch.manual_seed(RANDOM_SEED)
    return Encoder(model_cfg)


def check_available(root: Root, model_id: str) -> None:
    """Refuse, with one line, a model whose run or weights file is missing, before any work is done for it
    (embed computes a dataset's train stats first, minutes at scale)."""
    kind, arg = parse_id(model_id)
    if kind == "run":
        from training import checkpoint as ckpt

        if not root.exists(ckpt.run_file(arg, ckpt.ENCODER)):
            runs = root.listdir("models")
            raise FileNotFoundError(f"{root.url}: no run {arg!r} ({ckpt.run_file(arg, ckpt.ENCODER)} is missing; "
                                    f"runs here: {runs or 'none'})")
    elif arg.split(":")[0] == "random" and kind in ("byola-v1", "byola-v2"):
        return
    elif kind == "byola-v2":
        raise ValueError(f"model {model_id!r}: byola-v2 takes 'random' (or 'random:<config>'); trained v2 "
                         "models are runs: run:<name>")
    else:
        _file(arg, kind)


def load(root: Root, spec: ModelSpec, device: str = "cpu") -> StoreModel:
    """Build the model a spec names, on `device`, in eval mode, with its fingerprint."""
    kind, arg = parse_id(spec.id)
    check_available(root, spec.id)
    front = BYOLA.to_dict()
    if kind == "run":
        from training import checkpoint as ckpt
        from training.models import Encoder, ModelConfig

        state = ckpt.load(root, arg, ckpt.ENCODER)
        net = Encoder(ModelConfig.from_dict(state["model_config"]))
        net.load_state_dict(state["encoder"])
        spec = replace(spec, mean=state["stats"]["mean"], std=state["stats"]["std"], stats_source=f"run:{arg}")
        front, name = state.get("front_end", front), f"run-{arg}"
    elif kind in ("byola-v1", "byola-v2") and arg.split(":")[0] == "random":
        config = arg.split(":", 1)[1] if ":" in arg else None
        net = _random_encoder(kind[-2:], config)
        name = f"{kind}-random" + (f"-{_safe(config)}" if config else "")
    elif kind == "byola-v1":
        from training.weights import load_v1

        net, name = load_v1(_file(arg, kind)), f"byola-v1-{_safe(Path(arg).stem)}"
    elif kind == "wavlm-base-plus":
        from featurestore.wavlm import load_wavlm

        net = load_wavlm(_file(arg, kind))
        return _finish(StoreModel(spec, "wavlm-base-plus", kind, 768, net, front_end=None), device)
    else:
        from featurestore.yamnet import load_yamnet

        net = load_yamnet(_file(arg, kind))
        return _finish(StoreModel(spec, "yamnet", kind, 1024, net, front_end=None), device)
    if spec.mean is None or spec.std is None:
        raise ValueError(f"model {spec.id!r} carries no normalisation stats: give --norm-mean/--norm-std or "
                         "--stats-diet, or let embed compute the dataset's train-split stats")
    return _finish(StoreModel(spec, name, kind, net.cfg.embedding_dim, net, front_end=front), device)


def _finish(model: StoreModel, device: str) -> StoreModel:
    model.network = model.network.to(device).eval()
    model.device = device
    model.sha = _fingerprint(model)
    return model


def _fingerprint(model: StoreModel) -> str:
    parts = [model.network, model.kind, model.front_end, model.spec.mean, model.spec.std, "max+mean"]
    if model.spec.pooling == "frames":
        from featurestore.frames import description

        parts.append(description())
    return _digest(*parts)


def with_pooling(model: StoreModel, pooling: str) -> StoreModel:
    """The same loaded model (network shared, not copied) with another pooling and its fingerprint
    (`featurestore.frames.modes` says which poolings a model supports)."""
    out = replace(model, spec=replace(model.spec, pooling=pooling))
    out.sha = _fingerprint(out)
    return out


def needs_stats(model_id: str) -> bool:
    """Whether a model has no stats of its own (foreign BYOL-A weights and random-init encoders)."""
    kind, _ = parse_id(model_id)
    return kind in ("byola-v1", "byola-v2")


def _byola_embed(model: StoreModel, waves: list[np.ndarray]) -> np.ndarray:
    """Equal lengths batched together (pooling over padded frames would change max and mean), longest first."""
    fe = FrontEnd(**model.front_end) if model.front_end else BYOLA
    mel = LogMel(fe, model.device)
    padded = waves  # already at least 1 s (StoreModel.embed)
    out = np.zeros((len(waves), model.width), np.float32)
    order = sorted(range(len(padded)), key=lambda i: -len(padded[i]))
    start = 0
    while start < len(order):
        length = len(padded[order[start]])
        per_batch = max(1, BATCH_FRAMES // fe.frames(length))
        end = start
        while end < len(order) and end - start < per_batch and len(padded[order[end]]) == length:
            end += 1
        chosen = order[start:end]
        x = mel(np.stack([padded[i] for i in chosen]).astype(np.float32))
        x = ((x.to(model.device) - model.spec.mean) / model.spec.std).unsqueeze(1)
        from training.models import embed  # channels-last, chunked, BatchNorm folded (its docstring)

        out[chosen] = embed(model.network, x).float().cpu().numpy()
        start = end
    return out

