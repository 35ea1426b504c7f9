"""From the listing and its probe to the plan: quarantine, duplicates, cutting, interleaving, shards.

The plan is a pure function of (listing, probe results, config), so the same input always gives the same
shards; it is written to `catalog/<collection>/plan.parquet` before any shard job runs. Everything here
works on columns (numpy / Arrow): at 3.85 M clips no Python object per clip is held, except a key while it
is hashed (`HASH_SLICE` at a time) and, for the FSD superset only, the rows of its dedup groups. Steps
run over `CHUNK` clips at a time and the listing is consumed as the plan takes its columns: the driver
holds about the plan, the listing and a few numbers a clip, never copies of them (measured in
`make bench-scale`).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from collections.abc import Callable

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
CHUNK = 16_384  # clips per step of cutting, keys and shard filling (temporaries held at once)
HASH_SLICE = 8_192  # keys held as Python strings at once while hashing


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


def _c_library() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not macOS, not musl)


_LIBC = _c_library()


def release_memory() -> None:
    """Give the memory the step just done freed back to the OS before the next step allocates.

    glibc keeps freed chunks in its heap and reuses them only for requests they fit, so steps that each
    free large arrays and allocate others raise the resident size step by step: planning 200,000 clips
    peaked at 277 MiB without trims between its steps, 238-243 MiB with them (Dask trims its workers'
    heaps the same way)."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def build_plan(listing: Listing, probes: pa.Table, healthy: np.ndarray,
               cfg: IngestConfig) -> tuple[pa.Table, dict[str, int]]:
    """Clips of every healthy recording, interleaved by a seeded hash of the key, cut into shards; and how
    many short tails were dropped per corpus.

    A cut recording gives non-overlapping clips of `clip_seconds or segment_seconds`; a recording shorter
    than one clip is kept whole; the tail policy applies to what remains after at least one full clip.
    Consumes `listing.table`: each column is dropped from it once the plan holds its clips' values, so
    the two are never both whole in memory (the listing's per-source facts stay). Besides the plan, four
    numbers a clip and the temporaries of `CHUNK` clips are held at once: keys are made chunk by chunk,
    once for the interleaving digests and again in plan order, when the rest of the listing is gone
    (cheaper than holding them twice)."""
    rec, start, valid, stored, tails_dropped = _clips(listing, probes, healthy, cfg)
    release_memory()
    digests = np.empty(len(rec), dtype=">u8")
    for begin in range(0, len(rec), CHUNK):
        digests[begin:begin + CHUNK] = _interleaving(_keys(listing.table, rec, start, begin), cfg.seed)
    order = np.argsort(digests, kind="stable")
    _check_unique(digests, order, listing.table, rec, start)
    del digests
    release_memory()
    rec = rec[order]  # one array at a time: each is copied once, the old one freed
    start = start[order]
    valid = valid[order]
    stored = stored[order]
    del order
    shard, position = _assign_shards(stored, cfg.shard_seconds)
    names = pa.array([shard_name(i) for i in range(int(shard[-1]) + 1 if len(shard) else 0)])
    columns = {"shard": names.take(pa.array(shard)), "position": pa.array(position, pa.int32()),
               "start": pa.array(start), "seconds": pa.array(valid), "stored_seconds": pa.array(stored)}
    del shard, position, valid, stored
    release_memory()
    take = pa.array(rec)
    columns["source_rate"] = probes.column("rate").take(take)
    columns["source_channels"] = probes.column("channels").take(take)
    listing.table = listing.table.select(list(_FROM_LISTING))
    last = ("corpus", "path")  # the keys are made from these: taken last
    for name in [n for n in _FROM_LISTING if n not in last]:
        columns[name] = listing.table.column(name).take(take)
        listing.table = listing.table.drop_columns([name])
        release_memory()
    columns["key"] = pa.chunked_array([_keys(listing.table, rec, start, b) for b in range(0, len(rec), CHUNK)],
                                      pa.string())
    del rec, start
    for name in last:
        columns["source" if name == "path" else name] = listing.table.column(name).take(take)
        listing.table = listing.table.drop_columns([name])
    return pa.table([columns[f.name] for f in PLAN_SCHEMA], schema=PLAN_SCHEMA), tails_dropped


def _keys(listing: pa.Table, rec: np.ndarray, start: np.ndarray, begin: int) -> pa.Array:
    """Keys of clips [begin, begin + CHUNK)."""
    take = pa.array(rec[begin:begin + CHUNK])
    return clip_keys(listing.column("corpus").take(take), listing.column("path").take(take),
                     start[begin:begin + CHUNK])


def _clips(listing: Listing, probes: pa.Table, healthy: np.ndarray,
           cfg: IngestConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(recording row, start, valid seconds, stored seconds) of every clip in listing order, and the short
    tails dropped per corpus. Computed in steps of ~`CHUNK` clips into arrays sized up front: the
    temporaries of cutting (a dozen numbers a clip) never exist for all clips at once."""
    sizes = [s.rows for s in listing.sources]
    rows = np.flatnonzero(healthy)
    source_of = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    cuts = np.repeat(np.array([s.cut for s in listing.sources], dtype=bool), sizes)
    inputs = _gatherer(listing, probes)
    length = cfg.clip_seconds or cfg.segment_seconds
    counts = np.concatenate([_cut(rows[b:b + CHUNK], cuts, inputs, length)[2] for b in range(0, len(rows), CHUNK)]
                            or [np.zeros(0, np.int64)])
    total = np.cumsum(counts)
    steps = np.unique(np.searchsorted(total, np.arange(0, total[-1] if len(total) else 0, CHUNK), side="right"))
    rec = np.empty(int(total[-1]) if len(total) else 0, np.int64)
    start, valid, stored = (np.empty(len(rec)) for _ in range(3))
    tails, filled = np.zeros(len(sizes), np.int64), 0
    for begin, end in zip([0, *steps[1:].tolist()], [*steps[1:].tolist(), len(rows)]):
        part = _expand(rows[begin:end], cuts, inputs, length, cfg)
        n = len(part[0])
        for out, values in zip((rec, start, valid, stored), part[:4]):
            out[filled:filled + n] = values
        tails += np.bincount(source_of[part[4]], minlength=len(sizes))
        filled += n
    tails_dropped = {s.name: int(n) for s, n in zip(listing.sources, tails)}
    return rec[:filled], start[:filled], valid[:filled], stored[:filled], tails_dropped


def _gatherer(listing: Listing, probes: pa.Table) -> Callable[[np.ndarray], tuple[np.ndarray, ...]]:
    """rows -> (rate, frames, start, duration or NaN) of those recordings, gathered a step at a time."""
    rate, frames = _numbers(probes.column("rate")), _numbers(probes.column("frames"))
    start, duration = listing.table.column("start"), listing.table.column("duration")

    def gather(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        take = pa.array(rows)
        return rate[rows], frames[rows], _numbers(start.take(take)), _numbers(pc.fill_null(duration.take(take), np.nan))

    return gather


def _cut(rows: np.ndarray, cuts: np.ndarray, inputs: Callable[[np.ndarray], tuple[np.ndarray, ...]],
         length: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per recording of `rows`: (start, seconds of audio, clips, whether it is cut)."""
    rate, frames, rec_start, duration = inputs(rows)
    file_seconds = frames / rate.astype(np.float64)
    end = np.where(np.isnan(duration), file_seconds, np.minimum(file_seconds, rec_start + duration))
    seconds = np.maximum(0.0, end - rec_start)
    is_cut = cuts[rows] & (seconds > length + 1e-9)
    count = np.where(is_cut, np.maximum(1, np.ceil(seconds / length - 1e-9)), 1).astype(np.int64)
    return rec_start, seconds, count, is_cut


def _expand(rows: np.ndarray, cuts: np.ndarray, inputs: Callable[[np.ndarray], tuple[np.ndarray, ...]], length: float,
            cfg: IngestConfig) -> tuple[np.ndarray, ...]:
    """The clips of recordings `rows`: (recording row, start, valid, stored) of those kept, and the
    recording rows of the short tails dropped."""
    rec_start, seconds, count, is_cut = _cut(rows, cuts, inputs, length)
    rec = np.repeat(rows, count)
    k = np.arange(len(rec)) - np.repeat(np.cumsum(count) - count, count)
    cut = np.repeat(is_cut, count)
    offset = np.where(cut, k * length, 0.0)
    whole = np.repeat(seconds, count)
    valid = np.where(cut, np.minimum(length, whole - offset), whole)
    full = cut & (valid >= length - 1e-9)
    tail = cut & ~full
    dropped = tail & ((cfg.tail == "drop") | (valid < cfg.min_tail_seconds))
    valid = np.where(full, length, valid)
    stored = np.where(tail & (cfg.tail == "pad"), length, valid)
    kept = ~dropped
    start = np.repeat(rec_start, count)[kept] + offset[kept]
    return rec[kept], start, valid[kept], stored[kept], rec[dropped]


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column without nulls as one numpy array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.to_numpy()


def _check_unique(digests: np.ndarray, order: np.ndarray, listing: pa.Table, rec: np.ndarray,
                  start: np.ndarray) -> None:
    """Refuse two clips with one key. Equal keys have equal interleaving digests, so only the clips whose
    digest repeats (none, or a handful) are compared by key: the keys themselves are never sorted."""
    ordered = digests[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    del ordered
    if len(same) == 0:
        return
    clips = np.unique(np.concatenate([order[same], order[same + 1]]))
    take, path = pa.array(rec[clips]), listing.column("path")
    by_key: dict[str, list[int]] = {}
    keys = clip_keys(listing.column("corpus").take(take), path.take(take), start[clips])
    for clip, key in zip(clips.tolist(), keys.to_pylist()):
        by_key.setdefault(key, []).append(clip)
    clashes = {key: found for key, found in by_key.items() if len(found) > 1}
    if clashes:
        key = min(clashes)
        first, second = sorted(clashes[key])[:2]
        a, b = sorted((path[int(rec[first])].as_py(), path[int(rec[second])].as_py()))
        raise ValueError(f"two clips map to key {key!r}: {a!r} and {b!r} "
                         "(paths that differ only by '/' vs '.' vs '-'); rename one or split the corpus")


def _interleaving(keys: pa.Array, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per key (blake2b of `seed:key`), the corpora-mixing sort order. Hashed in
    slices of `HASH_SLICE`: each key is a Python string while it is hashed."""
    out = np.empty(len(keys), dtype=">u8")
    for begin in range(0, len(keys), HASH_SLICE):
        digests = b"".join(hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest()
                           for k in keys.slice(begin, HASH_SLICE).to_pylist())
        out[begin:begin + HASH_SLICE] = np.frombuffer(digests, dtype=">u8")
    return out


def _assign_shards(stored: np.ndarray, shard_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(shard number, position) of each clip in order: a shard closes before the clip that would take it
    past `shard_seconds` (a clip longer than that gets a shard of its own)."""
    firsts, filled = [0], 0.0
    for begin in range(0, len(stored), CHUNK):
        for i, seconds in enumerate(stored[begin:begin + CHUNK].tolist(), start=begin):
            if i > firsts[-1] and filled + seconds > shard_seconds:
                firsts.append(i)
                filled = 0.0
            filled += seconds
    counts = np.diff(np.append(firsts, len(stored)))
    shard = np.repeat(np.arange(len(firsts), dtype=np.int64), counts) if len(stored) else np.zeros(0, np.int64)
    position = np.arange(len(stored)) - np.repeat(np.asarray(firsts), counts) if len(stored) else shard
    return shard, position
