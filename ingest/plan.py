"""From the listing and its probe to the plan: quarantine, duplicates, cutting, interleaving, shards.

The plan is a pure function of (listing, probe results, config), so the same input always gives the same
shards; it is written to `catalog/<collection>/plan.parquet` before any shard job runs. Everything here
works on columns (numpy / Arrow): at 3.85 M clips no Python object per clip is made, except the 8-byte
interleaving digest (hashed in chunks) and, for the FSD superset only, the rows of its dedup groups.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.config import IngestConfig
from ingest.keys import clip_keys
from ingest.listing import Listing
from shards.catalog import DUPLICATES_SCHEMA
from shards.layout import shard_name

log = logging.getLogger(__name__)

_TEXT = pa.dictionary(pa.int32(), pa.string())
PLAN_SCHEMA = pa.schema([
    ("shard", pa.string()), ("position", pa.int32()), ("key", pa.string()), ("corpus", _TEXT),
    ("domain", _TEXT), ("subset", _TEXT), ("split", _TEXT), ("label", pa.string()),
    ("speaker", pa.string()), ("source", pa.string()),  # the recording's path under its corpus
    ("start", pa.float64()), ("seconds", pa.float64()), ("stored_seconds", pa.float64()),
    ("source_rate", pa.int32()), ("source_channels", pa.int32()), ("extra", pa.string()),
])
_FROM_LISTING = ("corpus", "domain", "subset", "split", "label", "speaker", "path", "extra")
DIGEST_CHUNK = 1 << 20  # clips held as Python values at once (interleaving digests, shard filling)


def quarantine_reasons(listing: Listing, probes: pa.Table) -> pa.Array:
    """The probe's reasons, plus recordings whose region starts past the end of their file."""
    reason = probes.column("reason").combine_chunks()
    rate = probes.column("rate").to_numpy().astype(np.float64)
    seconds = np.divide(probes.column("frames").to_numpy(), rate, out=np.zeros(len(rate)), where=rate > 0)
    start = listing.table.column("start").to_numpy()
    late = np.flatnonzero(pc.is_null(reason).to_numpy(zero_copy_only=False) & (start >= seconds))
    if len(late) == 0:
        return reason
    values = reason.to_pylist()
    for i in late:
        values[i] = (f"region starts at {start[i]:.2f}s but the file lasts {seconds[i]:.2f}s "
                     "(audio cut to the region? set the adapter's offset option)")
    return pa.array(values, type=pa.string())


def deduplicate(listing: Listing, probes: pa.Table, reason: pa.Array) -> tuple[np.ndarray, pa.Table]:
    """(rows to keep, dropped duplicates as DUPLICATES_SCHEMA): within a dedup group the first listed
    copy wins, by id, then by decoded audio. Only rows of dedup groups are looked at one by one."""
    table = listing.table
    keep = np.ones(table.num_rows, dtype=bool)
    grouped = pc.fill_null(pc.and_(pc.is_valid(table.column("dedup_group")), pc.is_null(reason)), False)
    rows = np.flatnonzero(grouped.to_numpy(zero_copy_only=False))
    dropped: list[dict] = []
    if len(rows) == 0:
        return keep, DUPLICATES_SCHEMA.empty_table()
    take = pa.array(rows)
    sub = table.select(["corpus", "path", "dedup_group", "dedup_key"]).take(take)
    hashes = probes.column("audio_hash").take(take).to_pylist()
    seen_key: dict[tuple[str, str], str] = {}
    seen_hash: dict[tuple[str, str], str] = {}
    for i, corpus, path, group, dkey, digest in zip(rows, *(sub.column(c).to_pylist() for c in sub.column_names),
                                                   hashes):
        if dkey and (group, dkey) in seen_key:
            dropped.append({"corpus": corpus, "path": path, "duplicate_of": seen_key[(group, dkey)],
                            "reason": f"same id {dkey}"})
            keep[i] = False
            continue
        if digest and (group, digest) in seen_hash:
            dropped.append({"corpus": corpus, "path": path, "duplicate_of": seen_hash[(group, digest)],
                            "reason": "same decoded audio"})
            keep[i] = False
            continue
        if dkey:
            seen_key[(group, dkey)] = f"{corpus}:{path}"
        if digest:
            seen_hash[(group, digest)] = f"{corpus}:{path}"
    return keep, pa.Table.from_pylist(dropped, schema=DUPLICATES_SCHEMA)


def build_plan(listing: Listing, probes: pa.Table, healthy: np.ndarray,
               cfg: IngestConfig) -> tuple[pa.Table, dict[str, int]]:
    """Clips of every healthy recording, interleaved by a seeded hash of the key, cut into shards; and how
    many short tails were dropped per corpus.

    A cut recording gives non-overlapping clips of `clip_seconds or segment_seconds`; a recording shorter
    than one clip is kept whole; the tail policy applies to what remains after at least one full clip."""
    table = listing.table
    sizes = [s.table.num_rows for s in listing.sources]
    source_of = np.repeat(np.arange(len(sizes)), sizes)
    cut_rows = np.repeat(np.array([s.cut for s in listing.sources], dtype=bool), sizes)
    rows = np.flatnonzero(healthy)
    rate = probes.column("rate").to_numpy()[rows].astype(np.float64)
    file_seconds = probes.column("frames").to_numpy()[rows] / rate
    rec_start = table.column("start").to_numpy()[rows]
    duration = pc.fill_null(table.column("duration"), np.nan).to_numpy()[rows]
    end = np.where(np.isnan(duration), file_seconds, np.minimum(file_seconds, rec_start + duration))
    seconds = np.maximum(0.0, end - rec_start)

    length = cfg.clip_seconds or cfg.segment_seconds
    is_cut = cut_rows[rows] & (seconds > length + 1e-9)
    count = np.where(is_cut, np.maximum(1, np.ceil(seconds / length - 1e-9)), 1).astype(np.int64)
    rec = np.repeat(rows, count)
    k = np.arange(len(rec)) - np.repeat(np.cumsum(count) - count, count)
    offset = np.where(np.repeat(is_cut, count), k * length, 0.0)
    whole = np.repeat(seconds, count)
    cut = np.repeat(is_cut, count)
    valid = np.where(cut, np.minimum(length, whole - offset), whole)
    full = cut & (valid >= length - 1e-9)
    tail = cut & ~full
    dropped = tail & ((cfg.tail == "drop") | (valid < cfg.min_tail_seconds))
    tails = np.bincount(source_of[rec[dropped]], minlength=len(sizes))
    tails_dropped = {s.name: int(n) for s, n in zip(listing.sources, tails)}
    valid = np.where(full, length, valid)
    stored = np.where(tail & (cfg.tail == "pad"), length, valid)
    kept = ~dropped
    start = np.repeat(rec_start, count)[kept] + offset[kept]
    rec, valid, stored = rec[kept], valid[kept], stored[kept]

    keys = clip_keys(table.column("corpus").take(pa.array(rec)), table.column("path").take(pa.array(rec)), start)
    _check_unique(keys, table.column("path").take(pa.array(rec)))
    order = np.argsort(_interleaving(keys, cfg.seed), kind="stable")
    rec, start, valid, stored = rec[order], start[order], valid[order], stored[order]
    keys = keys.take(pa.array(order))
    shard, position = _assign_shards(stored, cfg.shard_seconds)

    names = pa.array([shard_name(i) for i in range(int(shard[-1]) + 1 if len(shard) else 0)])
    meta = table.select(list(_FROM_LISTING)).take(pa.array(rec))
    probes_rows = probes.select(["rate", "channels"]).take(pa.array(rec))
    columns = {
        "shard": names.take(pa.array(shard)), "position": pa.array(position, pa.int32()), "key": keys,
        **{("source" if c == "path" else c): meta.column(c) for c in _FROM_LISTING},
        "start": pa.array(start), "seconds": pa.array(valid), "stored_seconds": pa.array(stored),
        "source_rate": probes_rows.column("rate"), "source_channels": probes_rows.column("channels"),
    }
    return pa.table([columns[f.name] for f in PLAN_SCHEMA], schema=PLAN_SCHEMA), tails_dropped


def _check_unique(keys: pa.Array, paths: pa.ChunkedArray) -> None:
    order = pc.sort_indices(keys)
    ordered = keys.take(order)
    same = np.flatnonzero(pc.equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)) \
        if len(keys) > 1 else []
    if len(same):
        i = int(same[0])
        first, second = int(order[i].as_py()), int(order[i + 1].as_py())
        a, b = sorted((paths[first].as_py(), paths[second].as_py()))
        raise ValueError(f"two clips map to key {ordered[i].as_py()!r}: {a!r} and {b!r} "
                         "(paths that differ only by '/' vs '.' vs '-'); rename one or split the corpus")


def _interleaving(keys: pa.Array, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per key (blake2b of `seed:key`), the corpora-mixing sort order."""
    out = np.empty(len(keys), dtype=">u8")
    for begin in range(0, len(keys), DIGEST_CHUNK):
        chunk = keys.slice(begin, DIGEST_CHUNK).to_pylist()
        digests = b"".join(hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest() for k in chunk)
        out[begin:begin + len(chunk)] = np.frombuffer(digests, dtype=">u8")
    return out


def _assign_shards(stored: np.ndarray, shard_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(shard number, position) of each clip in order: a shard closes before the clip that would take it
    past `shard_seconds` (a clip longer than that gets a shard of its own)."""
    firsts, filled = [0], 0.0
    for begin in range(0, len(stored), DIGEST_CHUNK):
        for i, seconds in enumerate(stored[begin:begin + DIGEST_CHUNK].tolist(), start=begin):
            if i > firsts[-1] and filled + seconds > shard_seconds:
                firsts.append(i)
                filled = 0.0
            filled += seconds
    counts = np.diff(np.append(firsts, len(stored)))
    shard = np.repeat(np.arange(len(firsts), dtype=np.int64), counts) if len(stored) else np.zeros(0, np.int64)
    position = np.arange(len(stored)) - np.repeat(np.asarray(firsts), counts) if len(stored) else shard
    return shard, position
