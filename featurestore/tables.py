"""The store's tables: schemas, partitions, atomic commits and streaming reads (docs/store.md).

A table is a folder `store/<table>/` of partitions (`model=<m>/dataset=<d>/` for embeddings). A partition
holds Parquet parts and one `_manifest.json` that names them, written last by an atomic rename (one PUT on
S3). Readers list only the parts the manifest names, so a reader during a write sees the old data or the
new, never a part: a crashed writer leaves at most unnamed parts, which the next commit removes. Parts of
one generation (the embedding model's fingerprint, for instance) have stable names, so a re-run after a
crash keeps the parts it already wrote and a reader of the old manifest is never shown a changed file
under an old name.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shards import layout
from shards.storage import Root  # also the analysis's way to the data root (it imports featurestore only)
from shards.version import code_version

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
# How each table is partitioned (folder order). Probe results are partitioned by model and task so that
# re-probing one model replaces only its rows; summaries are recomputed whole.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "items": ("dataset",), "rsa_items": ("dataset",), "embeddings": ("model", "dataset"),
    "descriptors": ("dataset",), "probes": ("model", "task"), "predictions": ("model", "task"),
    "probe_summary": (), "probe_pairs": (), "rsa": (), "rsa_models": (), "rsa_summary": (), "tsne": ("dataset",),
}
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
# Parquet settings per table. Embeddings: BYTE_STREAM_SPLIT + zstd on float32 vectors, no statistics on
# them (measured in `make bench`, stage store); everything else zstd.
ROW_GROUP_ROWS = 16_384
ITEMS_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("key", pa.string()), ("clip", pa.string()), ("split", pa.string()),
    ("label", pa.string()), ("group", pa.string()), ("start_ms", pa.int64()), ("duration_ms", pa.int64()),
    ("pitch", pa.int16()), ("gender", pa.string()), ("limited_train", pa.bool_()),
])
RSA_ITEMS_SCHEMA = pa.schema([("dataset", pa.string()), ("key", pa.string()), ("purpose", pa.string())])


def embeddings_schema(width: int) -> pa.Schema:
    """Embeddings of one model: the vector as a fixed-size list of float32 (DuckDB views cast it to FLOAT[d])."""
    if width < 1:
        raise ValueError(f"embedding width={width}: expected >= 1")
    return pa.schema([
        ("dataset", pa.string()), ("key", pa.string()), ("split", pa.string()), ("label", pa.string()),
        ("model", pa.string()), ("model_sha", pa.string()), ("embedding", pa.list_(pa.float32(), width)),
    ])


def check_table(table: str) -> str:
    if table not in PARTITIONS:
        raise ValueError(f"store table {table!r}: expected one of {sorted(PARTITIONS)}")
    return table


def check_partition(table: str, partition: dict[str, str]) -> dict[str, str]:
    """The partition's values in folder order; every key of the table, each a path-safe name."""
    keys = PARTITIONS[check_table(table)]
    if set(partition) != set(keys):
        raise ValueError(f"store table {table!r} is partitioned by {list(keys)}, got {sorted(partition)}")
    for k in keys:
        if not isinstance(partition[k], str) or not _VALUE.match(partition[k]):
            raise ValueError(f"{table}: {k}={partition[k]!r} is not a store name (letters, digits, _ . -)")
    return {k: partition[k] for k in keys}


def report_dir(name: str) -> str:
    """Where a report of the store's results goes (the analysis reaches the layout through the store)."""
    return layout.report_dir(name)


def partition_dir(table: str, partition: dict[str, str]) -> str:
    part = check_partition(table, partition)
    return "/".join([layout.store_dir(table)] + [f"{k}={v}" for k, v in part.items()])


def lineage(**fields: Any) -> dict[str, Any]:
    """What every committed partition records about how it was made: the caller's fields (model id and
    fingerprint, front end, config...) plus the code version and the time of the commit."""
    return {**fields, "code_version": code_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# -- writing -----------------------------------------------------------------------------------------
def _same_schema(table: str, got: pa.Schema, want: pa.Schema) -> None:
    got, want = got.remove_metadata(), want.remove_metadata()
    if got.equals(want):
        return
    for field in want:
        index = got.get_field_index(field.name)
        if index < 0:
            raise ValueError(f"{table}: rows lack column {field.name!r} ({field.type})")
        if got.field(index).type != field.type:
            raise ValueError(f"{table}: column {field.name!r} is {got.field(index).type}, expected {field.type}")
    extra = [n for n in got.names if n not in want.names]
    raise ValueError(f"{table}: unexpected columns {extra} (or a different order: expected {want.names})")


def part_name(generation: str, name: str) -> str:
    if not _VALUE.match(generation) or not _VALUE.match(name):
        raise ValueError(f"part generation={generation!r} name={name!r}: expected store names")
    return f"part-{generation}-{name}.parquet"


def write_part(root: Root, table: str, partition: dict[str, str], generation: str, name: str, data: pa.Table,
               schema: pa.Schema, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one Parquet part of a partition (atomically) and return its manifest entry. Safe from any
    worker process: nothing is visible to readers until `commit` names the part."""
    _same_schema(table, data.schema, schema)
    data = data.cast(schema).replace_schema_metadata({"audiodiet": json.dumps(meta or {})})
    rel = f"{partition_dir(table, partition)}/{part_name(generation, name)}"
    # byte_stream_split names leaf columns: a vector's floats are `<name>.list.element` (the compliant
    # nested layout pyarrow writes); the bare name matches nothing and silently leaves the floats PLAIN
    vectors = [f"{f.name}.list.element" for f in schema if pa.types.is_fixed_size_list(f.type)]
    # no min/max statistics for vector elements: no query can prune on them, and computing them took 27 % of
    # an embedding write's CPU (make bench, stage store: 21.5 k -> 29.4 k rows per CPU-second at 2,048-d)
    scalars = [f.name for f in schema if not pa.types.is_fixed_size_list(f.type)]
    with root.writer(rel) as out:
        pq.write_table(data, out.file, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                       use_byte_stream_split=vectors or False, write_statistics=scalars,
                       use_dictionary=[f.name for f in schema if pa.types.is_string(f.type)])
    return {"name": part_name(generation, name), "rows": data.num_rows}


def manifest(root: Root, table: str, partition: dict[str, str]) -> dict[str, Any] | None:
    rel = f"{partition_dir(table, partition)}/{MANIFEST}"
    if not root.exists(rel):
        return None
    return json.loads(root.read_bytes(rel))


def committed_schema(root: Root, table: str, partition: dict[str, str]) -> pa.Schema:
    """The schema a partition was committed with (from its manifest: no data file is opened)."""
    record = manifest(root, table, partition)
    if record is None:
        raise FileNotFoundError(f"{root.url_of(partition_dir(table, partition))}: nothing committed")
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(record["schema"])))


def commit(root: Root, table: str, partition: dict[str, str], entries: list[dict[str, Any]],
           lineage_: dict[str, Any], schema: pa.Schema, replace: bool = False) -> dict[str, Any]:
    """Name `entries` as the partition's contents (one atomic write), then delete parts no longer named.
    A partition holds one model fingerprint: committing another under the same name refuses unless
    `replace`, so two different models can never be mixed or silently swapped under one name."""
    folder = partition_dir(table, partition)
    old = manifest(root, table, partition)
    if old and not replace and old["lineage"].get("model_sha") != lineage_.get("model_sha"):
        raise ValueError(f"{root.url_of(folder)} holds model_sha {old['lineage'].get('model_sha')}, not "
                         f"{lineage_.get('model_sha')}: another model has this name (pass --replace to overwrite)")
    names = sorted({e["name"] for e in entries})
    if len(names) != len(entries):
        raise ValueError(f"{folder}: the same part was committed twice")
    record = {"table": table, "partition": check_partition(table, partition),
              "files": sorted(entries, key=lambda e: e["name"]), "rows": sum(e["rows"] for e in entries),
              "schema": schema.remove_metadata().serialize().to_pybytes().hex(), "lineage": lineage_}
    root.write_bytes(f"{folder}/{MANIFEST}", json.dumps(record, indent=1).encode())
    for stale in set(root.listdir(folder, ".parquet")) - set(names):
        root.fs.rm(root.path(f"{folder}/{stale}"))
    return record


def write(root: Root, table: str, partition: dict[str, str], data: pa.Table, schema: pa.Schema,
          lineage_: dict[str, Any], replace: bool = True) -> dict[str, Any]:
    """A whole small partition in one part (items, probe results, summaries), committed at once."""
    generation = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 1_000_000_000:09d}"
    entry = write_part(root, table, partition, generation, "0", data, schema, lineage_)
    return commit(root, table, partition, [entry], lineage_, schema, replace=replace)


# -- reading -----------------------------------------------------------------------------------------
def partitions(root: Root, table: str, **where: str | list[str]) -> list[dict[str, str]]:
    """The committed partitions of `table` (those with a manifest) whose values match `where`."""
    keys = PARTITIONS[check_table(table)]
    found: list[dict[str, str]] = [{}]
    for key in keys:
        wanted = where.get(key)
        wanted = [wanted] if isinstance(wanted, str) else wanted
        deeper = []
        for part in found:
            folder = "/".join([layout.store_dir(table)] + [f"{k}={v}" for k, v in part.items()])
            for name in root.listdir(folder):
                if name.startswith(f"{key}="):
                    value = name[len(key) + 1:]
                    if wanted is None or value in wanted:
                        deeper.append({**part, key: value})
        found = deeper
    unknown = set(where) - set(keys)
    if unknown:
        raise ValueError(f"store table {table!r} has no partition key {sorted(unknown)} (keys: {list(keys)})")
    return [p for p in found if root.exists(f"{partition_dir(table, p)}/{MANIFEST}")]


def files(root: Root, table: str, **where: str | list[str]) -> list[str]:
    """URLs of the committed parts of the matching partitions, in partition then part order."""
    urls = []
    for part in partitions(root, table, **where):
        record = manifest(root, table, part)
        urls += [root.url_of(f"{partition_dir(table, part)}/{f['name']}") for f in record["files"]]
    return urls


def _open(root: Root, url: str) -> pq.ParquetFile:
    if root.is_local:
        return pq.ParquetFile(url, memory_map=True)
    return pq.ParquetFile(root.fs.open(url, "rb"), pre_buffer=False)


def read_file(root: Root, url: str, columns: list[str] | None = None) -> pa.Table:
    """One committed part (a URL from `files`), only `columns`: the unit a streaming reader loads at a time."""
    return _open(root, url).read(columns=columns, use_threads=root.is_local).replace_schema_metadata(None)


def scan(root: Root, table: str, columns: list[str] | None = None, batch_size: int = 65_536,
         **where: str | list[str]) -> Iterator[pa.RecordBatch]:
    """Record batches of the matching partitions, part by part: memory stays at one batch however large
    the table (AVA's millions of windows × 3,072 floats)."""
    for url in files(root, table, **where):
        source = _open(root, url)
        yield from source.iter_batches(batch_size=batch_size, columns=columns, use_threads=root.is_local)


def read(root: Root, table: str, columns: list[str] | None = None, **where: str | list[str]) -> pa.Table:
    """The matching rows as one table: for small tables (items of one dataset, probe results)."""
    tables = [read_file(root, url, columns) for url in files(root, table, **where)]
    if not tables:
        raise FileNotFoundError(f"{root.url}: store table {table!r} has nothing committed"
                                + (f" for {where}" if where else ""))
    return pa.concat_tables(tables)


def rows(root: Root, table: str, **where: str | list[str]) -> int:
    """Row count of the matching partitions, from their manifests (no Parquet read)."""
    return sum(manifest(root, table, p)["rows"] for p in partitions(root, table, **where))
