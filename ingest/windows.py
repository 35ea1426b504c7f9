"""Windows tables: datasets whose examples are windows of long recordings (AVA-Speech's 1-s clips at a
10-ms hop) keep each recording once in the shards and list the windows as rows pointing into it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from ingest import corpora
from ingest.config import IngestConfig, Source
from ingest.keys import clip_key
from ingest.remote import local_view
from shards import layout
from shards.catalog import read_catalog
from shards.storage import Root

WINDOW_SCHEMA = pa.schema([
    ("key", pa.string()), ("video_id", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
    ("offset", pa.float64()), ("label", pa.string()), ("split", pa.string()), ("limited_train", pa.bool_()),
])
WINDOWS_PER_WRITE = 100_000  # rows held as Python values before they are written as one row group


def write_windows(source: Source, cfg: IngestConfig) -> int:
    """Write `catalog/<collection>/windows.parquet` for a dataset whose adapter describes windows (the
    `Corpus.windows` of its description); `offset` is a window's start within its sample `key`. Only
    windows inside audio that was written count (a quarantined or shorter movie has fewer). Returns the
    number of windows (0: the dataset has none)."""
    adapter = corpora.get(source.adapter)
    if adapter.windows is None:
        return 0
    local_root, _ = local_view(source.root, adapter.root_is_file)
    samples = {r.path: r for r in adapter.recordings(local_root, source.options)}
    root, count = Root(cfg.data), 0
    catalog = read_catalog(root, cfg.collection, ["key", "seconds"])
    written = dict(zip(catalog.column("key").to_pylist(), catalog.column("seconds").to_pylist()))
    with root.writer(layout.windows_path(cfg.collection)) as out:
        writer = pq.ParquetWriter(out.file, WINDOW_SCHEMA, compression="zstd")
        rows: list[dict] = []
        for w in adapter.windows_of(local_root, source.options):
            rec = samples[w.path]
            key = clip_key(source.name, rec.path, rec.start)
            if w.end - rec.start > written.get(key, -1.0) + 1e-6:
                continue
            rows.append({"key": key, "video_id": w.video_id, "start": w.start, "end": w.end,
                         "offset": round(w.start - rec.start, 6), "label": w.label, "split": w.split,
                         "limited_train": w.limited_train})
            if len(rows) >= WINDOWS_PER_WRITE:
                writer.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA))
                count, rows = count + len(rows), []
        writer.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA))
        writer.close()
    return count + len(rows)
