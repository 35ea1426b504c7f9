"""Self-describing checkpoints, written atomically under `models/<run>/` (local or s3://).

`checkpoint.pt` holds everything a run needs to continue exactly: model config, online/target/predictor
weights and buffers, optimizer, step, loader state, norm stats with their front end, diet name and
fingerprint, code version and the config; each rank's Mixup memory is in `rank-state/` beside it. No RNG
state is needed: randomness is re-seeded from (seed, rank, step) before every step (see train.py).
`encoder.pt` is the small file the feature store reads: encoder weights, model config, stats, diet.
Both are read with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import torch

from shards import layout
from shards.storage import Root

CHECKPOINT = "checkpoint.pt"
ENCODER = "encoder.pt"
CONFIG = "config.json"
METRICS = "metrics.parquet"
LOSS_PLOT = "loss.png"


def run_file(run: str, name: str) -> str:
    return f"{layout.model_dir(run)}/{name}"


def diet_fingerprint(root: Root, diet: str) -> str:
    """sha256 of the diet's manifest: which shards and index files, hence which clips, it reads."""
    return hashlib.sha256(root.read_bytes(layout.diet_manifest_path(diet))).hexdigest()[:16]


def save(root: Root, run: str, name: str, state: dict[str, Any]) -> None:
    """torch.save into memory, then one atomic commit (rename locally, one PUT on S3)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    root.write_bytes(run_file(run, name), buffer.getvalue())


def load(root: Root, run: str, name: str = CHECKPOINT) -> dict[str, Any]:
    rel = run_file(run, name)
    if not root.exists(rel):
        raise FileNotFoundError(f"{root.url}: no {rel}; nothing to resume (start the run without --resume)")
    try:
        return torch.load(io.BytesIO(root.read_bytes(rel)), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file is a finding, not a crash
        raise ValueError(f"{root.url_of(rel)}: not a readable checkpoint ({type(err).__name__})") from None
