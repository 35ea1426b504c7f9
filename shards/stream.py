"""`python -m shards stream`: a quick health check of a diet through a loader, locally or from a bucket."""

from __future__ import annotations

import logging
import time

import numpy as np

from shards.diets import load_diet
from shards.loader import dali_device, dali_loader, load_stats, torch_loader
from shards.sampler import LoaderState, Sampler

log = logging.getLogger(__name__)


def stream(data: str, diet: str, backend: str = "auto", batch_size: int = 256, batches: int = 20,
           workers: int = 0, seed: int = 42) -> dict:
    """Time `batches` batches (after one warm-up) and summarise them; returns a JSON-able report."""
    table = load_diet(data, diet)
    try:
        stats = load_stats(data, diet)
    except FileNotFoundError:
        log.warning("no stats for diet %s: streaming unnormalised log-mel", diet)
        stats = None
    sampler = Sampler(len(table), min(batch_size, len(table)), seed=seed)
    device = dali_device()
    if backend == "auto":
        backend = "dali" if device is not None else "torch"
    if backend == "dali":
        batches_iter = dali_loader(table, sampler, LoaderState(), stats, device_id=device)
        where = f"GPU {device}" if device is not None else "CPU"
    else:
        batches_iter = iter(torch_loader(table, sampler, LoaderState(), stats, workers=workers))
        where = f"CPU ({workers} workers)" if workers else "CPU (in-process)"
    first = next(batches_iter)
    t0, count, shares, last = time.perf_counter(), 0, [], first
    for batch in batches_iter:
        count += 1
        shares.append(np.bincount(batch.corpus_id, minlength=len(table.corpora)))
        last = batch
        if count >= batches:
            break
    seconds = max(time.perf_counter() - t0, 1e-9)
    x = last.x.float().cpu()
    share = np.sum(shares, axis=0) if shares else np.bincount(first.corpus_id, minlength=len(table.corpora))
    mean_member = float(np.mean(np.where(np.array(table.codecs)[table.codec_id] == "wav",
                                         2 * 15_200, table.size)))
    return {"backend": backend, "device": where, "diet": diet, "batches": count,
            "crops_per_s": count * sampler.batch_size / seconds,
            "mb_per_s": count * sampler.batch_size * mean_member / seconds / 1e6,
            "shape": list(x.shape), "mean": float(x.mean()), "std": float(x.std()),
            "corpus_share": {c: round(float(n / share.sum()), 3) for c, n in zip(table.corpora, share)}}
