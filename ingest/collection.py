"""A collection on the data root: its frozen plan (made once, then reused), its shard jobs, its completion.

The manifest (config + fingerprint) and the plan are written before any shard job runs; a re-run with the
same fingerprint reuses them, one that differs refuses. The shard index and the completion record are
written after every shard committed, the completion record last of all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.config import IngestConfig
from ingest.listing import Listing
from ingest.plan import build_plan, deduplicate, quarantine_reasons, release_memory
from ingest.probe import probe_listing
from ingest.write import ShardJob, ShardResult
from shards import layout
from shards.catalog import QUARANTINE_SCHEMA, SHARD_INDEX_SCHEMA, read_table, write_table
from shards.storage import Root

PLAN_META = "audiodiet.plan"


class FingerprintMismatch(ValueError):
    """A collection exists with other settings or other sources: refuse rather than mix them."""


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What planning left out, per corpus: quarantined at the probe, duplicates, short tails dropped."""

    quarantined: dict[str, int]
    duplicates: dict[str, int]
    tails_dropped: dict[str, int]

    def to_dict(self) -> dict:
        return {"quarantined": self.quarantined, "duplicates": self.duplicates, "tails_dropped": self.tails_dropped}

    @classmethod
    def from_dict(cls, data: dict) -> "Outcomes":
        return cls(dict(data["quarantined"]), dict(data["duplicates"]), dict(data["tails_dropped"]))


def frozen_plan(root: Root, manifest: dict, listing: Listing, cfg: IngestConfig, executor: Executor,
                in_flight: int) -> tuple[pa.Table, Outcomes]:
    """The plan on disk if this collection was planned with the same fingerprint; else make and freeze it."""
    collection = manifest["collection"]
    manifest_rel, plan_rel = layout.manifest_path(collection), layout.plan_path(collection)
    if root.exists(manifest_rel):
        old = json.loads(root.read_bytes(manifest_rel))
        if old["fingerprint"] != manifest["fingerprint"]:
            raise FingerprintMismatch(
                f"collection {collection!r} in {root.url} was built from other settings or sources "
                f"(fingerprint {old['fingerprint']}, now {manifest['fingerprint']}); write new corpora or "
                "settings to a new collection (--collection NAME)")
        if root.exists(plan_rel):
            plan = read_table(root, plan_rel)
            outcomes = Outcomes.from_dict(json.loads(plan.schema.metadata[PLAN_META.encode()]))
            return plan.replace_schema_metadata(None), outcomes
    release_memory()  # what unpickling the listing left behind
    probes = probe_listing(executor, listing, cfg.probe_batch, in_flight)
    release_memory()
    reason = quarantine_reasons(listing, probes)
    keep, duplicates = deduplicate(listing, probes, reason)
    healthy = keep & pc.is_null(reason).to_numpy(zero_copy_only=False)
    bad = pa.array(np.flatnonzero(pc.is_valid(reason).to_numpy(zero_copy_only=False)))
    quarantine = pa.table({
        "collection": pa.array([collection] * len(bad), pa.string()),
        "corpus": pc.cast(listing.table.column("corpus").take(bad), pa.string()),
        "source": listing.table.column("path").take(bad), "key": pa.nulls(len(bad), pa.string()),
        "stage": pa.array(["probe"] * len(bad), pa.string()), "reason": reason.take(bad),
    }, schema=QUARANTINE_SCHEMA)
    del keep, reason, bad
    probes = probes.select(["rate", "channels", "frames"])  # what the plan still reads
    release_memory()
    plan, tails = build_plan(listing, probes, healthy, cfg)  # consumes the listing's columns
    del probes, healthy
    release_memory()
    write_table(root, layout.quarantine_path(collection, "probe"), quarantine)
    write_table(root, layout.duplicates_path(collection), duplicates)
    outcomes = Outcomes(count_by_corpus(quarantine.column("corpus")), count_by_corpus(duplicates.column("corpus")),
                        {c: n for c, n in tails.items() if n})
    root.write_bytes(manifest_rel, json.dumps(manifest, indent=1, sort_keys=True).encode())
    _write_plan(root, plan_rel, plan, outcomes)
    return plan, outcomes


def _write_plan(root: Root, rel: str, plan: pa.Table, outcomes: Outcomes) -> None:
    """The bytes `catalog.write_table` writes, streamed to the committed file: written to a buffer, then
    copied to bytes, a plan of 3.85 M clips (~20 B a clip as Parquet) would be held twice more."""
    table = plan.replace_schema_metadata({PLAN_META: json.dumps(outcomes.to_dict())})
    with root.writer(rel) as out:
        pq.write_table(table, out.file, compression="zstd")


def count_by_corpus(corpus: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    counts = pc.value_counts(pc.cast(corpus, pa.string()))
    return {c["values"]: c["counts"] for c in counts.to_pylist()}


def shard_jobs(plan: pa.Table, cfg: IngestConfig, bases: dict[str, str]) -> Iterator[ShardJob]:
    """One job per shard, made only when submitted: the plan is in (shard, position) order, so each job is
    one contiguous run of the Arrow table (it travels to the worker as Arrow, not as Python rows).

    The run is copied out of the plan: a zero-copy slice pickles with its parent's whole buffers, so each
    job sent to a worker would carry the entire plan (27 MB a job at 200,000 clips, ~0.5 GB at 3.85 M)."""
    if plan.num_rows == 0:  # everything quarantined or deduplicated: a complete, empty collection
        return
    shard = plan.column("shard")
    changes = np.flatnonzero(pc.not_equal(shard[1:], shard[:-1]).to_numpy(zero_copy_only=False)) + 1
    starts = [0, *changes.tolist(), plan.num_rows]
    for begin, end in zip(starts[:-1], starts[1:]):
        rows = plan.slice(begin, end - begin)
        rows = rows.take(pa.array(np.arange(rows.num_rows)))  # taken from the slice: a take from the whole
        # plan would first concatenate each of its columns that has several chunks (the keys have many)
        yield ShardJob(cfg.data, cfg.collection, rows.column("shard")[0].as_py(), cfg.codec, rows,
                       {c: bases[c] for c in count_by_corpus(rows.column("corpus"))})


def shard_count(plan: pa.Table) -> int:
    """Shards in a plan: it is in shard order, so one more than the places where the shard changes."""
    if plan.num_rows == 0:
        return 0
    shard = plan.column("shard")
    return 1 + int(pc.sum(pc.not_equal(shard[1:], shard[:-1])).as_py() or 0)


def finish(root: Root, collection: str, results: Sequence[ShardResult], record: dict) -> None:
    """The shard index table, then the completion record `record` (last)."""
    index = pa.Table.from_pylist([
        {"shard": r.shard, "path": layout.tar_path(collection, r.shard), "idx": layout.idx_path(collection, r.shard),
         "clips": r.clips, "bytes": r.bytes, "seconds": r.seconds, "sha256": r.sha256} for r in results],
        schema=SHARD_INDEX_SCHEMA)
    write_table(root, layout.shard_index_path(collection), index)
    root.write_bytes(layout.complete_path(collection), json.dumps(record, indent=1, sort_keys=True).encode())


def decode_quarantine_counts(root: Root, collection: str) -> dict[str, int]:
    """Clips quarantined by shard jobs (stage decode), per corpus."""
    counts: dict[str, int] = {}
    for name in root.listdir(layout.quarantine_dir(collection), ".parquet"):
        if name == "probe.parquet":
            continue
        part = read_table(root, f"{layout.quarantine_dir(collection)}/{name}", ["corpus"])
        for corpus, n in count_by_corpus(part.column("corpus")).items():
            counts[corpus] = counts.get(corpus, 0) + n
    return counts
