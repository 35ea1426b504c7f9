"""What the store's rows are about: the `items` of each transfer dataset and its seeded `rsa_items`.

An item is one example of the study: a file (ESC-50, NSynth, ...) or, for datasets ingest described as
windows of long recordings (AVA-Speech), one 1-s window of a recording that the shards hold once. Items are
built columnar from the collection's catalog (and windows table), so millions of AVA windows cost no
Python objects; the audio stays in the shards (`clip` names the sample, `start_ms`/`duration_ms` the span).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore import tables
from shards import layout
from shards.catalog import collections, read_catalog, read_table
from shards.storage import Root

log = logging.getLogger(__name__)

RSA_ITEMS = 1_000  # SPEC §4: up to 1,000 files of the validation partition per dataset
TSNE_ITEMS = 2_000  # SPEC §4: up to 2,000 random validation files per dataset (Fig. 2)
SUBSET_SEED = 0  # the seed of both subsets; recorded in the rsa_items lineage


def datasets(root: Root) -> list[str]:
    """The transfer datasets present: complete collections ingested with purpose "transfer"."""
    return collections(root, "transfer")


def check_dataset(root: Root, dataset: str) -> str:
    present = datasets(root)
    if dataset not in present:
        raise ValueError(f"{root.url}: no transfer dataset {dataset!r} (present: {present or 'none'}; "
                         "ingest it with `python -m ingest transfer --dataset NAME=ADAPTER:PATH`)")
    return dataset


def adapter_of(root: Root, dataset: str) -> str:
    """The adapter a transfer dataset was ingested with (esc50, nsynth, ava_speech, ...): the probe protocol
    follows it, not the collection's name (the catalog's `corpus` column holds the user's source name)."""
    manifest = json.loads(root.read_bytes(layout.manifest_path(dataset)))
    adapters = sorted({s["adapter"] for s in manifest["sources"]})
    return adapters[0] if len(adapters) == 1 else dataset


def _extra_field(extra: pa.ChunkedArray, field: str, type_: pa.DataType) -> pa.Array:
    """One field of the catalog's JSON `extra` column (NSynth pitch, VCTK gender), null where absent."""
    values = [json.loads(e).get(field) if e else None for e in extra.to_pylist()]
    return pa.array(values, type=type_)


def build_items(root: Root, dataset: str) -> pa.Table:
    """The items of one transfer dataset in the `items` schema (docs/store.md)."""
    check_dataset(root, dataset)
    if root.exists(layout.windows_path(dataset)):
        return _window_items(root, dataset)
    cat = read_catalog(root, dataset, ["key", "split", "label", "speaker", "seconds", "extra"])
    n = cat.num_rows
    return pa.table({
        "dataset": pa.array([dataset] * n, pa.string()), "key": cat["key"], "clip": cat["key"],
        "split": cat["split"], "label": cat["label"], "group": cat["speaker"],
        "start_ms": pa.array(np.zeros(n, np.int64)),
        "duration_ms": pc.cast(pc.round(pc.multiply(cat["seconds"], 1000.0)), pa.int64()),
        "pitch": _extra_field(cat["extra"], "pitch", pa.int16()),
        "gender": _extra_field(cat["extra"], "gender", pa.string()),
        "limited_train": pa.nulls(n, pa.bool_()),
    }, schema=tables.ITEMS_SCHEMA)


def _window_items(root: Root, dataset: str) -> pa.Table:
    """AVA-style items: one per window row, keyed `<clip>@<start_ms:09d>` (start within the clip)."""
    win = read_table(root, layout.windows_path(dataset))
    n = win.num_rows
    start_ms = pc.cast(pc.round(pc.multiply(win["offset"], 1000.0)), pa.int64())
    duration_ms = pc.cast(pc.round(pc.multiply(pc.subtract(win["end"], win["start"]), 1000.0)), pa.int64())
    keys = pc.binary_join_element_wise(win["key"], pc.utf8_lpad(pc.cast(start_ms, pa.string()), 9, "0"), "@")
    return pa.table({
        "dataset": pa.array([dataset] * n, pa.string()), "key": keys, "clip": win["key"], "split": win["split"],
        "label": win["label"], "group": win["video_id"], "start_ms": start_ms, "duration_ms": duration_ms,
        "pitch": pa.nulls(n, pa.int16()), "gender": pa.nulls(n, pa.string()), "limited_train": win["limited_train"],
    }, schema=tables.ITEMS_SCHEMA)


def subsets(items: pa.Table, seed: int = SUBSET_SEED, rsa: int = RSA_ITEMS, tsne: int = TSNE_ITEMS) -> pa.Table:
    """The seeded RSA and t-SNE subsets of a dataset's validation items (each drawn independently from the
    sorted validation keys, so the same items give the same subsets on any machine)."""
    valid = pc.filter(items["key"], pc.equal(items["split"], "valid"))
    keys = np.sort(np.asarray(valid.to_numpy(zero_copy_only=False), dtype=object))
    dataset = items["dataset"][0].as_py() if items.num_rows else ""
    out = []
    for purpose, limit, offset in (("rsa", rsa, 0), ("tsne", tsne, 1)):
        rng = np.random.default_rng([seed, offset])
        chosen = keys if len(keys) <= limit else keys[np.sort(rng.choice(len(keys), limit, replace=False))]
        columns = {"dataset": [dataset] * len(chosen), "key": list(chosen), "purpose": [purpose] * len(chosen)}
        out.append(pa.table(columns, schema=tables.RSA_ITEMS_SCHEMA))
    return pa.concat_tables(out)


def write_items(root: Root, dataset: str) -> tuple[int, int]:
    """Build and commit `items` and `rsa_items` for one dataset; returns (items, subset rows)."""
    items = build_items(root, dataset)
    if items.num_rows == 0:
        raise ValueError(f"{root.url}: transfer dataset {dataset!r} has no items")
    shards_fp = root.read_bytes(layout.complete_path(dataset))
    import hashlib

    fingerprint = hashlib.sha256(shards_fp).hexdigest()[:16]
    corpus = adapter_of(root, dataset)
    tables.write(root, "items", {"dataset": dataset}, items, tables.ITEMS_SCHEMA,
                 tables.lineage(dataset=dataset, corpus=corpus, collection_fingerprint=fingerprint))
    sub = subsets(items)
    tables.write(root, "rsa_items", {"dataset": dataset}, sub, tables.RSA_ITEMS_SCHEMA,
                 tables.lineage(dataset=dataset, seed=SUBSET_SEED, rsa=RSA_ITEMS, tsne=TSNE_ITEMS))
    log.info("items of %s: %d (%d in the RSA/t-SNE subsets)", dataset, items.num_rows, sub.num_rows)
    return items.num_rows, sub.num_rows
