"""`python -m featurestore embed`: every item of a dataset through a model, into `store/embeddings/`.

One job per shard of the dataset's collection, run on the shared executor (in this process, local worker
processes, or a Dask cluster): the job reads its items' audio from the shard, embeds them (equal lengths
batched; on the GPU when present) and commits one Parquet part. The driver commits the partition's
manifest when every shard is done. Parts are named by the model's fingerprint and the shard, so a re-run
after a crash keeps the parts already written, and a re-run of a committed (model, dataset) is skipped.

Windows of long recordings (AVA) are embedded per window (`--pooling windows`, the reference) or pooled
from each recording's frames (`frames`, `featurestore.frames`); `auto` (the default) takes frames for
BYOL-A models when a seeded sample of the dataset's windows is within tolerance of per-window, and
records that check in the lineage. The pooling is part of the model fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore import frames, tables
from featurestore import items as items_mod
from featurestore.audio import ShardAudio
from featurestore.config import EmbedConfig
from featurestore.models import ModelSpec, StoreModel, check_available, load, needs_stats, with_pooling
from shards import layout
from shards.catalog import collection_shards, read_catalog
from shards.executor import bounded_map, make_executor
from shards.frontend import BYOLA, LogMel
from shards.malloc import retain_freed_memory
from shards.storage import Root

log = logging.getLogger(__name__)

STATS_ITEMS = 1_000  # train items (seeded) the default dataset stats are computed from
ITEM_COLUMNS = ["key", "clip", "split", "label", "start_ms", "duration_ms"]


@dataclass(frozen=True, slots=True)
class Job:
    data: str
    spec: ModelSpec
    device: str
    dataset: str
    shard: str
    generation: str
    items: pa.Table  # this shard's items (ITEM_COLUMNS)


@dataclass
class EmbedResult:
    model: str
    dataset: str
    model_sha: str
    rows: int
    skipped: bool


def device_of(cfg: EmbedConfig) -> str:
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible here")
    return "cuda" if cfg.device == "auto" and torch.cuda.is_available() else "cpu" if cfg.device == "auto" \
        else cfg.device


def gpu_workers(cfg: EmbedConfig, device: str) -> int:
    """Local worker processes for a run: one per visible GPU when embedding on CUDA on a machine with several
    (each takes its own GPU, `take_gpu`), otherwise `cfg.workers`. On a Dask cluster each worker uses the GPU
    its cluster gave it (e.g. dask-cuda sets CUDA_VISIBLE_DEVICES per worker)."""
    if device != "cuda" or cfg.scheduler:
        return cfg.workers
    import torch

    gpus = torch.cuda.device_count()
    if gpus > 1 and cfg.workers not in (0, gpus):
        log.warning("--workers %d on %d GPUs: running one worker per GPU", cfg.workers, gpus)
    return gpus if gpus > 1 else cfg.workers


def take_gpu(queue) -> None:
    """Worker initializer: this process takes the next GPU index from `queue` and makes it the current device,
    so the models and tensors it puts on "cuda" land there (one process per GPU)."""
    import torch

    index = queue.get()
    torch.cuda.set_device(index)
    log.info("embed worker %d on cuda:%d", os.getpid(), index)


def _executor(cfg: EmbedConfig, device: str, workers: int):
    """The shared executor for a run's shard jobs (`workers` from `gpu_workers`): with several GPUs, one local
    process per GPU."""
    if device != "cuda" or cfg.scheduler or workers < 2:
        return make_executor(cfg.workers, cfg.scheduler)
    import multiprocessing

    queue = multiprocessing.get_context("spawn").SimpleQueue()
    for index in range(workers):
        queue.put(index)
    return make_executor(workers, initializer=take_gpu, initargs=(queue,))


def stats_rel(dataset: str) -> str:
    return f"{layout.store_dir('stats')}/{layout.check_name(dataset, 'dataset')}.json"


def dataset_stats(root: Root, dataset: str) -> dict:
    """Log-mel mean/std over up to STATS_ITEMS seeded train items of a dataset (whole files, the BYOL-A
    front end): the default stats of models that have none. Computed once, stored under store/stats/."""
    rel = stats_rel(dataset)
    if root.exists(rel):
        return json.loads(root.read_bytes(rel))
    log.warning("%s: computing the train split's log-mel stats once (models without stats of their own)", dataset)
    items = tables.read(root, "items", ITEM_COLUMNS, dataset=dataset)
    train = items.filter(pc.equal(items["split"], "train"))
    if train.num_rows == 0:
        raise ValueError(f"{dataset}: no train items to compute normalisation stats from; give --norm-mean/--norm-std")
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(train.num_rows, min(STATS_ITEMS, train.num_rows), replace=False))
    train = train.take(pick)
    shard_of = _shard_of(root, dataset)
    mel, total, total_sq, count = LogMel(BYOLA), 0.0, 0.0, 0
    for shard, rows in _by_shard(train, shard_of):
        for wave in ShardAudio(root, dataset, shard).waves(rows):
            x = mel(wave.astype(np.float32)).double()
            total, total_sq, count = total + float(x.sum()), total_sq + float((x * x).sum()), count + x.numel()
    mean = total / count
    stats = {"mean": mean, "std": float(np.sqrt(max(total_sq / count - mean * mean, 1e-12))), "items": len(pick),
             "dataset": dataset, "front_end": BYOLA.to_dict()}
    root.write_bytes(rel, json.dumps(stats, indent=1).encode())
    return stats


def _shard_of(root: Root, dataset: str) -> dict[str, str]:
    cat = read_catalog(root, dataset, ["key", "shard"])
    return dict(zip(cat["key"].to_pylist(), cat["shard"].to_pylist()))


def _by_shard(items: pa.Table, shard_of: dict[str, str]):
    shards = pa.array([shard_of[c] for c in items["clip"].to_pylist()], pa.string())
    for shard in sorted(set(shards.to_pylist())):
        yield shard, items.filter(pc.equal(shards, shard))


def resolve_spec(root: Root, cfg: EmbedConfig, model_id: str, dataset: str) -> ModelSpec:
    """The model's stats: its own (runs), the flags, a diet's stats file, or the dataset's train split."""
    if not needs_stats(model_id):
        return ModelSpec(model_id)
    if cfg.norm_mean is not None:
        return ModelSpec(model_id, cfg.norm_mean, cfg.norm_std, "flags")
    if cfg.stats_diet:
        from shards.loader import load_stats

        stats = load_stats(cfg.data, cfg.stats_diet)
        return ModelSpec(model_id, stats["mean"], stats["std"], f"diet:{cfg.stats_diet}")
    stats = dataset_stats(root, dataset)
    return ModelSpec(model_id, stats["mean"], stats["std"], f"train:{dataset}")


_CACHE: dict[tuple, StoreModel] = {}


def _model(data: str, spec: ModelSpec, device: str) -> StoreModel:
    """One loaded model per worker process (a worker embeds many shards with it)."""
    key = (data, spec, device)
    if key not in _CACHE:
        retain_freed_memory()  # every batch reallocates the same large activations (shards.malloc)
        _CACHE.clear()
        _CACHE[key] = load(Root(data), spec, device)
    return _CACHE[key]


def embed_job(job: Job) -> tuple[str, dict]:
    """Embed one shard's items and write its part; returns (shard, manifest entry)."""
    root = Root(job.data)
    model = _model(job.data, job.spec, job.device)
    audio = ShardAudio(root, job.dataset, job.shard)
    if model.spec.pooling == "frames":
        vectors = frames.FramePooler(model).embed_items(audio, job.items)
    else:
        vectors = model.embed(audio.waves(job.items))
    n = job.items.num_rows
    flat = pa.array(vectors.reshape(-1), pa.float32())
    table = pa.table({
        "dataset": pa.array([job.dataset] * n, pa.string()), "key": job.items["key"], "split": job.items["split"],
        "label": job.items["label"], "model": pa.array([model.name] * n, pa.string()),
        "model_sha": pa.array([model.sha] * n, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, model.width),
    })
    entry = tables.write_part(root, "embeddings", {"model": model.name, "dataset": job.dataset}, job.generation,
                              job.shard, table, tables.embeddings_schema(model.width),
                              {"model_sha": model.sha, "shard": job.shard})
    return job.shard, entry


def _existing_parts(root: Root, partition: dict[str, str], generation: str) -> dict[str, dict]:
    """Parts a previous (interrupted) run of the same model fingerprint already committed to disk."""
    folder = tables.partition_dir("embeddings", partition)
    found = {}
    for name in root.listdir(folder, ".parquet"):
        prefix = f"part-{generation}-"
        if name.startswith(prefix):
            rows = pq.ParquetFile(root.fs.open(root.path(f"{folder}/{name}"), "rb")).metadata.num_rows
            found[name[len(prefix): -len(".parquet")]] = {"name": name, "rows": rows}
    return found


def embed_dataset(cfg: EmbedConfig, model_id: str, dataset: str,
                  on_items: Callable[[int, int], None] | None = None) -> EmbedResult:
    """Embed every item of `dataset` with `model_id` (skipped when stored for the same fingerprint)."""
    root = Root(cfg.data)
    items_mod.check_dataset(root, dataset)
    fp = hashlib.sha256(root.read_bytes(layout.complete_path(dataset))).hexdigest()[:16]
    stored = tables.manifest(root, "items", {"dataset": dataset})
    if stored is None or stored["lineage"].get("collection_fingerprint") != fp:
        items_mod.write_items(root, dataset)
    device = device_of(cfg)
    spec = resolve_spec(root, cfg, model_id, dataset)
    model = load(root, spec, device)
    modes = frames.modes(cfg.pooling, model, root.exists(layout.windows_path(dataset)))
    shas = {mode: with_pooling(model, mode).sha for mode in modes}
    partition = {"model": model.name, "dataset": dataset}
    done = tables.manifest(root, "embeddings", partition)
    stored = done["lineage"].get("model_sha") if done else None
    if done and stored in shas.values() and done["lineage"].get("items_fingerprint") == fp:
        if on_items:
            on_items(done["rows"], done["rows"])
        return EmbedResult(model.name, dataset, stored, done["rows"], skipped=True)
    if done and stored not in shas.values() and not cfg.replace:
        raise ValueError(f"{root.url}: store holds {model.name} embeddings of {dataset} from another model "
                         f"(model_sha {stored}, now {' or '.join(shas.values())}): pass --replace")
    if done and stored in shas.values():  # new items for a stored partition: keep its pooling (one fingerprint)
        modes = tuple(mode for mode in modes if shas[mode] == stored)
    items = tables.read(root, "items", ITEM_COLUMNS, dataset=dataset)
    shard_of = _shard_of(root, dataset)
    model, check = _choose_pooling(cfg, root, dataset, model, modes, items, shard_of)
    spec = model.spec
    _CACHE.clear()
    _CACHE[(cfg.data, spec, device)] = model
    generation = model.sha[:12]
    have = _existing_parts(root, partition, generation)
    order = {s: i for i, s in enumerate(collection_shards(root, dataset))}
    jobs = [Job(cfg.data, spec, device, dataset, shard, generation, rows)
            for shard, rows in sorted(_by_shard(items, shard_of), key=lambda p: order[p[0]]) if shard not in have]
    entries = dict(have)
    total, seen = items.num_rows, sum(e["rows"] for e in have.values())
    if on_items:
        on_items(seen, total)
    workers = gpu_workers(cfg, device)
    with _executor(cfg, device, workers) as pool:
        for shard, entry in bounded_map(pool, embed_job, jobs, in_flight=max(2, 2 * max(1, workers))):
            entries[shard] = entry
            seen += entry["rows"]
            if on_items:
                on_items(seen, total)
    meta = tables.lineage(model_id=model_id, model_sha=model.sha, model=model.name, width=model.width,
                          front_end=model.front_end, stats={"mean": model.spec.mean, "std": model.spec.std,
                                                            "source": model.spec.stats_source},
                          pooling=_pooling_name(model), pooling_check=check.to_dict() if check else None,
                          dataset=dataset, items_fingerprint=fp)
    tables.commit(root, "embeddings", partition, list(entries.values()), meta,
                  tables.embeddings_schema(model.width), replace=cfg.replace)
    return EmbedResult(model.name, dataset, model.sha, seen, skipped=False)


def _choose_pooling(cfg: EmbedConfig, root: Root, dataset: str, model: StoreModel, modes: tuple[str, ...],
                    items: pa.Table, shard_of: dict[str, str]) -> tuple[StoreModel, frames.PoolingCheck | None]:
    """The model with the pooling this run stores, and the frame-pooling check it was chosen by (None when
    frames were not a candidate)."""
    if "frames" not in modes:
        return with_pooling(model, modes[0]), None
    sample = frames.sample(items, frames.front_end(model))
    check = frames.check(model, ((ShardAudio(root, dataset, shard), rows)
                                 for shard, rows in _by_shard(sample, shard_of)))
    if check.passed or "windows" not in modes:
        if not check.passed:
            log.warning("%s × %s: frame pooling is %.4f (cosine distance) from per-window at worst on %d windows, "
                        "over the tolerance %.2g; used as --pooling frames asks (or as the stored part has it)",
                        model.name, dataset, check.max_distance, check.windows, check.tolerance)
        return with_pooling(model, "frames"), check
    log.warning("%s × %s: frame pooling is %.4f (cosine distance) from per-window at worst on %d windows, over "
                "the tolerance %.2g: embedding every window (--pooling auto)", model.name, dataset,
                check.max_distance, check.windows, check.tolerance)
    return with_pooling(model, "windows"), check


def _pooling_name(model: StoreModel) -> str:
    """The lineage's `pooling`: max+mean of each item's own frames, of recording frames, or the model's own."""
    if not model.front_end:
        return "mean"
    return "max+mean:frames" if model.spec.pooling == "frames" else "max+mean"


def embed(cfg: EmbedConfig, on_items: Callable[[str, int, int], None] | None = None) -> list[EmbedResult]:
    """Every (model, dataset) pair of the config; datasets default to every transfer dataset present."""
    if not cfg.models:
        raise ValueError("no model: give --model ID (run:<run>, byola-v2:random, yamnet:<file>, ...)")
    root = Root(cfg.data)
    datasets = list(cfg.datasets) or items_mod.datasets(root)
    if not datasets:
        raise ValueError(f"{root.url}: no transfer dataset to embed; ingest one with `python -m ingest transfer`")
    for model_id in cfg.models:
        check_available(root, model_id)
    results = []
    for model_id in cfg.models:
        for dataset in datasets:
            label = f"{model_id} × {dataset}"
            results.append(embed_dataset(replace(cfg), model_id, dataset,
                                         (lambda done, total, label=label: on_items(label, done, total))
                                         if on_items else None))
    return results


def stats_summary(results: list[EmbedResult]) -> dict[str, Any]:
    return {"embedded": sum(r.rows for r in results if not r.skipped), "skipped": sum(r.skipped for r in results)}
