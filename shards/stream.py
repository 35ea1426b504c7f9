"""`python -m shards stream`: a quick health check of a diet through a loader, locally or from a bucket."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

import numpy as np

from shards.config import BACKENDS, DEFAULT_LOADER, LoaderConfig
from shards.diets import load_diet
from shards.frontend import CROP_SAMPLES
from shards.loader import dali_device, dali_loader, load_stats, torch_loader
from shards.sampler import LoaderState, Sampler

log = logging.getLogger(__name__)


def stream(data: str, diet: str, cfg: LoaderConfig = DEFAULT_LOADER, backend: str = "auto",
           batches: int = 20) -> dict:
    """Time `batches` batches (after one warm-up; epochs repeat on small diets) and summarise them.
    Every read is checked against the index (`shards.loader.CropWaves`); `cfg.require_verified` refuses
    collections `python -m shards verify` has not passed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    if batches < 1:
        raise ValueError(f"batches={batches}: expected 1 or more")
    table = load_diet(data, diet, require_verified=cfg.require_verified)
    try:
        stats = load_stats(data, diet)
    except FileNotFoundError:
        log.warning("no stats for diet %s: streaming unnormalised log-mel", diet)
        stats = None
    sampler = Sampler(len(table), min(cfg.batch_size, len(table)), seed=cfg.seed)
    device = dali_device()
    if backend == "auto":
        backend = "dali" if device is not None else "torch"

    def epochs() -> Iterator:
        for epoch in itertools.count():
            state = LoaderState(epoch=epoch)
            if backend == "dali":
                yield from dali_loader(table, sampler, state, stats, device_id=device, cfg=cfg)
            else:
                yield from torch_loader(table, sampler, state, stats, cfg=cfg)

    where = (f"GPU {device}" if device is not None else "CPU") if backend == "dali" else \
        (f"CPU ({cfg.workers} workers)" if cfg.workers else "CPU (in-process)")
    batches_iter = epochs()
    first = next(batches_iter)
    t0, shares, last = time.perf_counter(), [], first
    for _, batch in zip(range(batches), batches_iter):
        shares.append(np.bincount(batch.corpus_id, minlength=len(table.corpora)))
        last = batch
    seconds = max(time.perf_counter() - t0, 1e-9)
    x = last.x.float().cpu()
    share = np.sum(shares, axis=0)
    crop_bytes = np.where(np.array(table.codecs)[table.codec_id] == "wav", 2 * CROP_SAMPLES, table.size)
    return {"backend": backend, "device": where, "diet": diet, "batches": len(shares),
            "crops_per_s": len(shares) * sampler.batch_size / seconds,
            "mb_per_s": len(shares) * sampler.batch_size * float(np.mean(crop_bytes)) / seconds / 1e6,
            "shape": list(x.shape), "mean": float(x.mean()), "std": float(x.std()),
            "corpus_share": {c: round(float(n / share.sum()), 3) for c, n in zip(table.corpora, share)}}
