"""Sources -> the listing: every recording of every source as one Arrow table, one executor job per source.

The listing is columnar end to end (a 3.85 M-recording listing is ~0.1 KB a row, not a Python object a
row): a job turns its adapter's records into record batches as they come and returns them with its
source's content digest (the fingerprint's share), so listing and fingerprinting run where the executor
runs them, side by side for several sources. Recording paths are relative to the source's `base` (a
folder or a URL, this run's): workers open `<base>/<path>`, so a corpus moved between runs is read from
where it is now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import corpora
from ingest.config import IngestConfig, Source
from ingest.keys import check_name
from ingest.remote import local_view

log = logging.getLogger(__name__)

_TEXT = pa.dictionary(pa.int32(), pa.string())  # few distinct values per column: 4 bytes a row
LISTING_SCHEMA = pa.schema([
    ("corpus", _TEXT), ("path", pa.string()), ("domain", _TEXT), ("split", _TEXT), ("label", pa.string()),
    ("speaker", pa.string()), ("subset", _TEXT), ("start", pa.float64()), ("duration", pa.float64()),
    ("dedup_group", _TEXT), ("dedup_key", pa.string()), ("extra", pa.string()),
    ("size", pa.int64()),  # bytes (-1: missing; the probe quarantines it), part of the fingerprint
])
_RECORD_FIELDS = ("path", "domain", "split", "label", "speaker", "subset", "start", "duration", "dedup_group",
                  "dedup_key")
BATCH_ROWS = 65_536  # records held as Python values at once inside a listing job


@dataclass(frozen=True, slots=True)
class SourceListing:
    """One source's facts, as its listing job found them (its recordings travel beside, as a table)."""

    name: str
    base: str  # folder (absolute) or URL that recording paths are relative to
    cut: bool  # its recordings are cut into clips (engine.cuts)
    rows: int  # recordings listed
    held_out: int  # valid/test recordings left out of a pre-training collection
    digest: str  # sha256 of the table's content: this source's share of the fingerprint


@dataclass(slots=True)
class Listing:
    """Every source's recordings, in source order then adapter order (deterministic).

    The one table is the only reference to the recordings' columns, and planning consumes it
    (`plan.build_plan` drops each column once the plan has taken it), so that the listing and the plan,
    each ~0.1 KB a clip, are never both whole in the driver."""

    sources: tuple[SourceListing, ...]
    table: pa.Table  # LISTING_SCHEMA without `size`, the sources' tables concatenated

    @property
    def bases(self) -> dict[str, str]:
        return {s.name: s.base for s in self.sources}


def cuts(source: Source, cfg: IngestConfig, purpose: str) -> bool:
    """Whether `source`'s recordings are cut into clips: never for transfer datasets; a folder/csv corpus
    the user keeps whole (`cut = false`) stays whole; else Table I's rule (folder/csv: cut), and
    `--clip-seconds` cuts every other corpus too."""
    if purpose == "transfer":
        return False
    if source.cut is not None:
        return source.cut
    return corpora.get(source.adapter).cut or cfg.clip_seconds is not None


def list_sources(sources: Sequence[Source], cfg: IngestConfig, purpose: str, executor: Executor) -> Listing:
    """One listing job per source on `executor`; results in source order."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    for name in names:
        check_name(name)
    futures = [executor.submit(list_source, s, cuts(s, cfg, purpose), purpose) for s in sources]
    parts, tables = zip(*(f.result() for f in futures))
    for part in parts:
        log.info("%s: %d recordings", part.name, part.rows)
    return Listing(parts, pa.concat_tables(tables))


def list_source(source: Source, cut: bool, purpose: str) -> tuple[SourceListing, pa.Table]:
    """Runs on a worker: the facts of one source and its recordings as a table. A root that is a URL is
    read through a local shadow of its layout (`remote.shadow_tree`), built where this job runs. A
    pre-training collection takes only `train` recordings (a labelled CSV's valid/test rows are held-out
    audio)."""
    adapter = corpora.get(source.adapter)
    options = dict(source.options)
    if adapter.kind == "custom":
        options.setdefault("domain", source.domain or adapter.domain)
    local_root, url_base = local_view(source.root, adapter.root_is_file)
    base = adapter.base_dir(local_root)
    if url_base is not None:  # the URL of the folder that recording paths are relative to
        shadow_top = local_root.parent if adapter.root_is_file else local_root
        rel = base.relative_to(shadow_top).as_posix()
        url_base = url_base if rel == "." else f"{url_base}/{rel}"
    local = str(base)
    batches, held_out = [], 0
    columns: dict[str, list] = {name: [] for name in (*_RECORD_FIELDS, "extra", "size")}
    for rec in adapter.recordings(local_root, options):
        if purpose == "pretrain" and rec.split != "train":
            held_out += 1
            continue
        for name in _RECORD_FIELDS:
            columns[name].append(getattr(rec, name))
        columns["extra"].append(json.dumps(dict(rec.extra), sort_keys=True) if rec.extra else "{}")
        try:
            columns["size"].append(os.stat(f"{local}/{rec.path}").st_size)
        except OSError:
            columns["size"].append(-1)
        if len(columns["path"]) >= BATCH_ROWS:
            batches.append(_batch(source.name, columns))
    if columns["path"]:
        batches.append(_batch(source.name, columns))
    table = pa.Table.from_batches(batches, LISTING_SCHEMA)
    if table.num_rows == 0:
        only = " in the train split" if held_out else ""
        raise ValueError(f"{source.name}: no recordings{only} found under {source.root!r} (adapter {source.adapter})")
    where = url_base if url_base is not None else str(Path(local).absolute())
    digest = table_digest(table)  # sizes count here; the driver never reads them, so they stay on the worker
    return SourceListing(source.name, where, cut, table.num_rows, held_out, digest), table.drop_columns(["size"])


def _batch(corpus: str, columns: dict[str, list]) -> pa.RecordBatch:
    """The collected values as a record batch; the lists are emptied for the next batch."""
    n = len(columns["path"])
    arrays = [pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([corpus]))]
    for f in LISTING_SCHEMA:
        if f.name == "corpus":
            continue
        values = pa.array(columns[f.name], type=f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
        arrays.append(values.dictionary_encode() if pa.types.is_dictionary(f.type) else values)
        columns[f.name].clear()
    return pa.RecordBatch.from_arrays(arrays, schema=LISTING_SCHEMA)


def table_digest(table: pa.Table) -> str:
    """sha256 of a table's values, column by column (as text: lengths, then bytes), independent of how
    the table is chunked or dictionary-encoded."""
    h = hashlib.sha256()
    for name in table.column_names:
        text = pc.fill_null(pc.cast(table.column(name), pa.string()), "\x00").combine_chunks()
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + len(text) + 1]
        h.update(name.encode())
        h.update(np.diff(offsets).astype("<i4").tobytes())
        if len(text) and text.buffers()[2] is not None:
            h.update(memoryview(text.buffers()[2])[offsets[0]:offsets[-1]])
    return h.hexdigest()
