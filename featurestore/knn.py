"""Exact cosine nearest neighbours over one model's embeddings.

Parquet cannot be memory-mapped as a matrix, so the first query of a (model, datasets) set writes a
derived cache beside the partition: the rows L2-normalised as a float32 `.npy` and their keys. It is named
by the manifests it was built from, so a re-embedding makes it stale by name (never wrong). Queries
memory-map it and take one pass of dot products over it in blocks, which is what bounds the time: the
same bytes a plain numpy pass over the matrix reads (`make bench`, stage store, measures the ratio).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore import tables
from shards import layout
from shards.catalog import read_table
from shards.storage import Root

log = logging.getLogger(__name__)

BLOCK_ROWS = 65_536  # rows per dot-product block: 512 MB of 2,048-d float32 at most in flight


@dataclass(frozen=True, slots=True)
class Neighbour:
    key: str
    label: str | None
    distance: float


def _cache_names(root: Root, model: str, datasets: list[str]) -> tuple[str, str]:
    parts = tables.partitions(root, "embeddings", model=model, **({"dataset": datasets} if datasets else {}))
    if not parts:
        raise FileNotFoundError(f"{root.url}: no embeddings of model {model!r}"
                                + (f" for {datasets}" if datasets else "") + " (run `python -m featurestore embed`)")
    digest = hashlib.sha256(json.dumps([tables.manifest(root, "embeddings", p) for p in parts],
                                       sort_keys=True).encode()).hexdigest()[:16]
    folder = f"{layout.store_dir('embeddings')}/model={model}"
    return f"{folder}/_knn-{digest}.npy", f"{folder}/_knn-{digest}.keys.parquet"


def _build(root: Root, model: str, datasets: list[str], matrix_rel: str, keys_rel: str) -> None:
    """Stream the embeddings once into the normalised matrix and its keys (no full table in memory)."""
    where = {"model": model, **({"dataset": datasets} if datasets else {})}
    rows = tables.rows(root, "embeddings", **where)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "m.npy"
        out = None
        keys, labels, at = [], [], 0
        for batch in tables.scan(root, "embeddings", ["key", "label", "embedding"], **where):
            flat = batch.column("embedding")
            width = flat.type.list_size
            if out is None:
                out = np.lib.format.open_memmap(local, mode="w+", dtype=np.float32, shape=(rows, width))
            block = flat.values.to_numpy(zero_copy_only=False).reshape(-1, width)
            norm = np.linalg.norm(block, axis=1, keepdims=True)
            out[at: at + len(block)] = block / np.where(norm == 0, 1, norm)
            at += len(block)
            keys += batch.column("key").to_pylist()
            labels += batch.column("label").to_pylist()
        out.flush()
        del out
        root.put_stream(matrix_rel, open(local, "rb"))
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"key": keys, "label": labels}), buf)
    root.write_bytes(keys_rel, buf.getvalue().to_pybytes())


def _matrix(root: Root, rel: str) -> np.ndarray:
    if root.is_local:
        return np.load(root.path(rel), mmap_mode="r")
    cache = Path(os.environ.get("AUDIODIET_CACHE", Path.home() / ".cache" / "audiodiet")) / rel.replace("/", "_")
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        root.fs.get_file(root.path(rel), str(cache))
    return np.load(cache, mmap_mode="r")


def top_k(matrix: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine distances of the k rows nearest `query` (rows and query unit-norm), ties broken
    by row order; `exclude` drops one row (the query item itself)."""
    best_i = np.empty(0, np.int64)
    best_s = np.empty(0, np.float32)
    for start in range(0, len(matrix), BLOCK_ROWS):
        scores = matrix[start: start + BLOCK_ROWS] @ query
        if exclude is not None and start <= exclude < start + len(scores):
            scores[exclude - start] = -np.inf
        take = min(k, len(scores))
        if take < len(scores):  # the k best, plus every row tied with the k-th (argpartition picks among
            kth = scores[np.argpartition(-scores, take - 1)[take - 1]]  # ties arbitrarily; row order decides)
            idx = np.flatnonzero(scores >= kth)
        else:
            idx = np.arange(len(scores))
        best_i = np.concatenate([best_i, idx + start])
        best_s = np.concatenate([best_s, scores[idx]])
        if len(best_i) > k:
            keep = np.lexsort((best_i, -best_s))[:k]
            best_i, best_s = best_i[keep], best_s[keep]
    order = np.lexsort((best_i, -best_s))
    best_i, best_s = best_i[order], best_s[order]
    valid = np.isfinite(best_s)
    return best_i[valid], (1.0 - best_s[valid]).astype(np.float64)


def _drop_other_caches(root: Root, matrix_rel: str, keys_rel: str) -> None:
    """One cache per model: the one just built replaces the others (a stale one after a re-embedding, or
    another dataset subset's), so 8 GB matrices never pile up at a million rows."""
    folder = matrix_rel.rsplit("/", 1)[0]
    keep = {matrix_rel.rsplit("/", 1)[1], keys_rel.rsplit("/", 1)[1]}
    for name in root.listdir(folder):
        if name.startswith("_knn-") and name not in keep:
            root.fs.rm(root.path(f"{folder}/{name}"))


def knn(root: Root, model: str, key: str, k: int = 10, datasets: list[str] | None = None) -> list[Neighbour]:
    """The k items nearest `key` by cosine distance among `model`'s embeddings (of `datasets`, default all)."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    datasets = list(datasets or [])
    matrix_rel, keys_rel = _cache_names(root, model, datasets)
    if not root.exists(matrix_rel) or not root.exists(keys_rel):
        log.info("building the kNN matrix of %s (once per embedding set)", model)
        _build(root, model, datasets, matrix_rel, keys_rel)
        _drop_other_caches(root, matrix_rel, keys_rel)
    index = read_table(root, keys_rel)
    row = pc.index(index["key"], key).as_py()  # in Arrow: a million keys as Python strings cost ~1 s a query
    if row < 0:
        raise ValueError(f"key {key!r} has no {model} embedding" + (f" in {datasets}" if datasets else ""))
    matrix = _matrix(root, matrix_rel)
    idx, dist = top_k(matrix, np.array(matrix[row]), k, exclude=row)
    found = index.take(pa.array(idx, pa.int64()))
    return [Neighbour(key_, label, float(d))
            for key_, label, d in zip(found["key"].to_pylist(), found["label"].to_pylist(), dist)]
