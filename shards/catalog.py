"""The clip catalog: the union of the per-shard Parquet parts that ingest committed.

Its schema lives here, in the lowest layer, because every reader (verify, diets, loaders, the feature
store) depends on it; ingest only writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq

from shards import layout
from shards.storage import Root

CATALOG_SCHEMA = pa.schema([
    ("key", pa.string()), ("collection", pa.string()), ("shard", pa.string()), ("corpus", pa.string()),
    ("domain", pa.string()), ("subset", pa.string()), ("split", pa.string()), ("label", pa.string()),
    ("speaker", pa.string()), ("source", pa.string()), ("start", pa.float64()), ("seconds", pa.float64()),
    ("frames", pa.int64()), ("sample_rate", pa.int32()), ("source_rate", pa.int32()),
    ("source_channels", pa.int32()), ("codec", pa.string()), ("extra", pa.string()), ("idx_line", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("collection", pa.string()), ("corpus", pa.string()), ("source", pa.string()), ("key", pa.string()),
    ("stage", pa.string()), ("reason", pa.string()),
])
# Catalog columns with few distinct values, dictionary-encoded in a part. The others (key, source, the numbers,
# idx_line) barely repeat: a dictionary page first tried and then abandoned made a diet's read of a part's
# idx_line 30 % slower.
CATALOG_DICTIONARY = ["collection", "shard", "corpus", "domain", "subset", "split", "label", "speaker",
                      "sample_rate", "source_rate", "source_channels", "codec", "extra"]
# One row per shard of a collection: `shards/<collection>/index.parquet`.
SHARD_INDEX_SCHEMA = pa.schema([
    ("shard", pa.string()), ("path", pa.string()), ("idx", pa.string()), ("clips", pa.int64()),
    ("bytes", pa.int64()), ("seconds", pa.float64()), ("sha256", pa.string()),
])
# Clips dropped as duplicates of an earlier one (FSD superset): `catalog/<collection>/duplicates.parquet`.
DUPLICATES_SCHEMA = pa.schema([(n, pa.string()) for n in ("corpus", "path", "duplicate_of", "reason")])
# Why a collection was ingested: diets draw only on "pretrain" collections, never on held-out "transfer" sets.
PURPOSES = ("pretrain", "transfer")
# Fields of the catalog row that also go into each sample's `<key>.json` (extra as an object there).
JSON_FIELDS = ("key", "collection", "shard", "corpus", "domain", "subset", "split", "label", "speaker", "source",
               "start", "seconds", "frames", "sample_rate", "source_rate", "source_channels", "extra")


def write_table(root: Root, rel: str, table: pa.Table, metadata: dict | None = None,
                dictionary: list[str] | None = None) -> None:
    """Parquet (zstd) committed atomically; `metadata` values are stored as JSON. `dictionary`: the only
    columns to dictionary-encode (default: every column, Parquet's choice)."""
    if metadata:
        table = table.replace_schema_metadata({k: json.dumps(v) for k, v in metadata.items()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True if dictionary is None else dictionary)
    root.write_bytes(rel, buf.getvalue().to_pybytes())


def read_table(root: Root, rel: str, columns: list[str] | None = None, dictionary: tuple[str, ...] = ()) -> pa.Table:
    """A Parquet file under the root, only `columns` of it: pyarrow reads the footer and those column
    chunks through the root's filesystem (ranged GETs on S3), never the whole object. `dictionary`: text
    columns read as dictionary arrays (a few distinct values: codes, not a string per row)."""
    if root.is_local:  # one file: ParquetFile skips pyarrow.dataset (~1 s to import)
        return pq.ParquetFile(root.path(rel), read_dictionary=dictionary or None).read(columns=columns)
    # Through fsspec pyarrow reads a Python file object; with its thread pool on, a process could exit while an
    # Arrow thread still held it and abort ("terminate called without an active exception", exit 134: 8 of
    # 120 loaded runs with threads, 0 of 160 without). A catalog part is small: read it on this thread.
    return pq.read_table(root.path(rel), columns=columns, filesystem=root.fs, use_threads=False,
                         read_dictionary=dictionary or None)


def table_metadata(root: Root, rel: str, key: str) -> dict:
    """A JSON value stored in a Parquet file's schema metadata (reads the footer only)."""
    if root.is_local:
        schema = pq.read_schema(root.path(rel))
    else:
        with root.fs.open(root.path(rel), "rb") as f:
            schema = pq.ParquetFile(f, pre_buffer=False).schema_arrow
    return json.loads(schema.metadata[key.encode()])


def table_rows(root: Root, rel: str) -> int:
    """Row count of a Parquet file, from its footer."""
    if root.is_local:
        return pq.ParquetFile(root.path(rel)).metadata.num_rows
    with root.fs.open(root.path(rel), "rb") as f:
        return pq.ParquetFile(f, pre_buffer=False).metadata.num_rows


def collections(root: Root, purpose: str | None = None) -> list[str]:
    """Collections whose completion record exists (only whole collections are read), optionally only
    those ingested for `purpose` (one of PURPOSES)."""
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r}, expected one of {PURPOSES}")
    names = [c for c in root.listdir("shards") if root.exists(layout.complete_path(c))]
    if purpose is None:
        return names
    return [c for c in names if json.loads(root.read_bytes(layout.complete_path(c))).get("purpose") == purpose]


def read_part(root: Root, collection: str, shard: str, columns: list[str] | None = None,
              dictionary: tuple[str, ...] = ()) -> pa.Table:
    """One shard's catalog part (only `columns`), cast to the catalog schema; the text columns named in
    `dictionary` as dictionary<int32, string>."""
    rel = layout.clips_part_path(collection, shard)
    try:
        table = read_table(root, rel, columns, dictionary)
    except FileNotFoundError:
        raise FileNotFoundError(f"{root.url}: catalog part {rel} is missing (the collection is incomplete: "
                                "re-run its ingest, then `python -m shards verify`)") from None
    fields = [CATALOG_SCHEMA.field(c) for c in (columns or CATALOG_SCHEMA.names)]
    schema = pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in dictionary else f for f in fields])
    return table.replace_schema_metadata(None).cast(schema)


def collection_shards(root: Root, collection: str) -> list[str]:
    """The shards of a complete collection, in order, or a one-line error when the collection is not
    complete or a shard's catalog part is missing (a reader would otherwise silently see fewer clips)."""
    layout.check_collection(collection)
    if not root.exists(layout.complete_path(collection)):
        raise FileNotFoundError(f"{root.url}: collection {collection!r} is not complete "
                                f"(no {layout.complete_path(collection)})")
    shards = read_table(root, layout.shard_index_path(collection), ["shard"]).column("shard").to_pylist()
    parts = {n[: -len(".parquet")] for n in root.listdir(layout.clips_part_dir(collection), ".parquet")}
    missing = [s for s in shards if s not in parts]
    if missing:
        raise FileNotFoundError(f"{root.url}: collection {collection!r} lacks the catalog part of "
                                f"{len(missing)} of its {len(shards)} shards (first: "
                                f"{layout.clips_part_path(collection, missing[0])}): re-run its ingest")
    return shards


def read_catalog(root: Root, collection: str, columns: list[str] | None = None) -> pa.Table:
    """All clips of a collection (the union of its committed parts), in shard then position order.
    Holds the whole table: on million-clip collections read a few columns, or part by part (read_part)."""
    folder = layout.clips_part_dir(collection)
    parts = [read_part(root, collection, name[: -len(".parquet")], columns)
             for name in root.listdir(folder, ".parquet")]
    schema = CATALOG_SCHEMA if columns is None else pa.schema([CATALOG_SCHEMA.field(c) for c in columns])
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)


def read_quarantine(root: Root, collection: str) -> pa.Table:
    folder = layout.quarantine_dir(collection)
    parts = [read_table(root, f"{folder}/{n}") for n in root.listdir(folder, ".parquet")]
    return pa.concat_tables(parts) if parts else QUARANTINE_SCHEMA.empty_table()


@contextmanager
def arrow_on_c_heap() -> Iterator[None]:
    """Arrow allocates from the C heap (malloc) for the duration, then from its default pool again.

    A reader or writer of millions of rows frees large Arrow buffers while numpy and Python allocate
    others. With pyarrow's default pool (mimalloc) the pages Arrow frees can serve only Arrow again, so
    both heaps grow: planning 200,000 clips peaked at 257 MiB that way and 233 MiB with Arrow on the C
    heap; writing the three diets of 200,000 clips rose 113 MB above the imports, 66 MB on the C heap.
    Not for a reader that only turns a table into numpy arrays (`diets.load_diet`): there glibc keeps the
    freed column buffers (a 3.85 M-clip diet peaked at 330 MB this way, 286 MB without). Buffers remember
    the pool they came from, so switching back is safe."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
