"""Header probe of every listed recording on the executor, as columns (one row per listing row).

A batch of `probe_batch` recordings is one job; the driver keeps a bounded number in flight and holds only
the results' columns. Bad input becomes a `reason` (quarantined later), never an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.listing import Listing
from shards import audio
from shards.executor import bounded_map

PROBE_SCHEMA = pa.schema([
    ("rate", pa.int32()), ("channels", pa.int32()), ("frames", pa.int64()),
    ("audio_hash", pa.string()),  # sha256 of the decoded PCM16, only where dedup needs it
    ("reason", pa.string()),  # why the recording is quarantined, else null
])


def probe_batch(job: tuple[int, Sequence[str], Sequence[bool]]) -> tuple[int, pa.RecordBatch]:
    """Runs on a worker: for a job (begin, paths, want_hash), (begin, header facts of `paths`); hashes
    decoded audio where asked."""
    begin, paths, want_hash = job
    rate, channels, frames, hashes, reasons = [], [], [], [], []
    for path, want in zip(paths, want_hash):
        try:
            info = audio.probe(path)
            digest = _audio_hash(path) if want else None
            values = (info.samplerate, info.channels, info.frames, digest, None)
        except audio.BadAudio as bad:
            values = (0, 0, 0, None, bad.reason)
        for column, value in zip((rate, channels, frames, hashes, reasons), values):
            column.append(value)
    return begin, pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip((rate, channels, frames, hashes, reasons), PROBE_SCHEMA)],
        schema=PROBE_SCHEMA)


def _audio_hash(path: str) -> str:
    """sha256 of the decoded PCM16 samples: finds the same sound re-encoded or renamed."""
    return hashlib.sha256(np.ascontiguousarray(audio.read_all_pcm16(path)).tobytes()).hexdigest()


def needs_audio_hash(table: pa.Table) -> np.ndarray:
    """Hash every member of a dedup group that has at least one member without a `dedup_key`."""
    group = pc.cast(table.column("dedup_group"), pa.string())
    keyless = pc.and_(pc.is_valid(group), pc.is_null(table.column("dedup_key")))
    groups = pc.unique(pc.filter(group, keyless))
    if len(groups) == 0:
        return np.zeros(table.num_rows, dtype=bool)
    return pc.fill_null(pc.is_in(group, value_set=groups), False).to_numpy(zero_copy_only=False)


def probe_listing(executor: Executor, listing: Listing, batch: int, in_flight: int) -> pa.Table:
    """PROBE_SCHEMA rows for every listing row, in listing order."""
    want = needs_audio_hash(listing.table)

    def jobs() -> Iterator[tuple[int, list[str], list[bool]]]:
        for begin in range(0, listing.table.num_rows, batch):
            count = min(batch, listing.table.num_rows - begin)
            yield begin, listing.source_paths(begin, count), want[begin:begin + count].tolist()

    done = dict(bounded_map(executor, probe_batch, jobs(), in_flight))
    batches = [done.pop(b) for b in sorted(done)]
    # one chunk per column: thousands of small batches cost ~KB each in the driver, and every reader
    # of a column would otherwise concatenate them again
    return pa.Table.from_batches(batches, PROBE_SCHEMA).combine_chunks()
