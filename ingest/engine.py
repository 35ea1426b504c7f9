"""The ingest engine: sources -> listing -> fingerprint -> probe -> frozen plan -> shard jobs -> commit.

`build_collection` is the one entry point; each step is its own module (`listing`, `fingerprint`,
`probe`, `plan`, `collection`, `write`), and every step that touches files runs on the executor.
Resumable by construction: the plan is frozen before any job runs, every file is committed atomically,
a shard's catalog part marks it done, and the collection's completion record is written last. Re-running
skips committed shards; a run killed anywhere and re-run yields byte-identical shards. One run owns a
collection at a time (`lease`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from ingest.collection import (
    FingerprintMismatch,
    Outcomes,
    decode_quarantine_counts,
    finish,
    frozen_plan,
    shard_count,
    shard_jobs,
)
from ingest.config import IngestConfig, Source
from ingest.fingerprint import fingerprint
from ingest.listing import list_sources
from ingest.plan import release_memory
from ingest.write import ShardResult, write_shard
from shards import layout, lease
from shards.catalog import PURPOSES, arrow_on_c_heap
from shards.diets import write_default_diets
from shards.executor import bounded_map, default_workers, make_executor
from shards.storage import TMP_MARK, Root

__all__ = ["FingerprintMismatch", "Progress", "Summary", "build_collection", "write_pretrain_diets"]

log = logging.getLogger(__name__)
CLUSTER_IN_FLIGHT = 256  # jobs submitted at once to a Dask cluster (its size is not known here)


@dataclass
class Summary:
    """What a run did, per corpus; also the body of the completion record."""

    collection: str
    fingerprint: str
    corpora: dict[str, dict] = field(default_factory=dict)
    shards: int = 0
    shards_skipped: int = 0
    quarantined: int = 0
    duplicates: int = 0
    planned_clips: int = 0  # in the frozen plan (before decode-stage quarantine)
    planned_seconds: float = 0.0
    planned_shards: int = 0

    def corpus(self, name: str) -> dict:
        return self.corpora.setdefault(name, {"recordings": 0, "clips": 0, "seconds": 0.0, "quarantined": 0,
                                              "duplicates": 0, "tails_dropped": 0, "held_out": 0})

    def to_dict(self) -> dict:
        """The collection's facts (not this run's: how many shards were skipped is left out, so a
        resumed run writes the same completion record as an uninterrupted one)."""
        return {"collection": self.collection, "fingerprint": self.fingerprint, "corpora": self.corpora,
                "shards": self.shards, "quarantined": self.quarantined, "duplicates": self.duplicates}

    def add_outcomes(self, outcomes: Outcomes) -> None:
        for name, counts in (("quarantined", outcomes.quarantined), ("duplicates", outcomes.duplicates),
                             ("tails_dropped", outcomes.tails_dropped)):
            for corpus, n in counts.items():
                self.corpus(corpus)[name] += n
        self.quarantined += sum(outcomes.quarantined.values())
        self.duplicates += sum(outcomes.duplicates.values())

    def add_shards(self, results: Sequence[ShardResult]) -> None:
        """Counted in shard order, not as jobs finish: a float sum depends on its order, and the completion
        record must not change from run to run (it did: 113.88997732426304 s, then ...303)."""
        for result in sorted(results, key=lambda r: r.shard):
            self.shards += 1
            self.shards_skipped += int(result.skipped)
            for corpus, (clips, seconds) in result.per_corpus.items():
                entry = self.corpus(corpus)
                entry["clips"] += clips
                entry["seconds"] += seconds


class Progress:
    """Callbacks the CLI turns into a progress bar; the library itself never prints."""

    def planned(self, clips: int, seconds: float) -> None: ...

    def shard_done(self, result: ShardResult) -> None: ...


def build_collection(sources: Sequence[Source], cfg: IngestConfig, progress: Progress | None = None,
                     purpose: str = "pretrain", plan_only: bool = False) -> Summary:
    """Ingest `sources` into `shards/<cfg.collection>/` under `cfg.data`; returns the run's summary.

    `purpose` ("pretrain" or "transfer") is recorded so that diets never draw on held-out datasets; a
    pre-training collection takes only the train split of each source. `plan_only`: freeze and write the
    plan (manifest, plan, probe quarantine, duplicates), then stop before any shard job.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r}, expected one of {PURPOSES}")
    progress = progress or Progress()
    collection = layout.check_collection(cfg.collection)
    root = Root(cfg.data)
    local = not (cfg.scheduler or cfg.jobqueue)
    in_flight = 2 * (cfg.workers or default_workers()) if local else CLUSTER_IN_FLIGHT
    with (lease.held(root, collection) as own, make_executor(cfg.workers, cfg.scheduler, cfg.jobqueue) as executor,
          arrow_on_c_heap()):
        listing = list_sources(sources, cfg, purpose, executor)
        summary = Summary(collection, fingerprint(sources, listing, cfg))
        for part in listing.sources:
            summary.corpus(part.name).update(recordings=part.rows, held_out=part.held_out)
        manifest = {"collection": collection, "fingerprint": summary.fingerprint, "purpose": purpose,
                    "config": cfg.fingerprint_fields(), "sources": [s.to_dict() for s in sources]}
        plan, outcomes = frozen_plan(root, manifest, listing, cfg, executor, in_flight)
        bases = listing.bases
        del listing  # the plan is all the shard jobs need
        release_memory()
        summary.add_outcomes(outcomes)
        summary.planned_clips, summary.planned_shards = plan.num_rows, shard_count(plan)
        summary.planned_seconds = float(pc.sum(plan.column("seconds")).as_py() or 0.0)
        if plan_only:
            return summary
        progress.planned(summary.planned_clips, summary.planned_seconds)
        _remove_stale_temporaries(root, collection)
        results = []
        for result in bounded_map(executor, write_shard, shard_jobs(plan, cfg, bases), in_flight):
            results.append(result)
            progress.shard_done(result)
        del plan
        release_memory()  # before the caller's next step (the CLI writes the diets) allocates
        summary.add_shards(results)
        decode_quarantined = decode_quarantine_counts(root, collection)
        for corpus, n in decode_quarantined.items():
            summary.corpus(corpus)["quarantined"] += n
        summary.quarantined += sum(decode_quarantined.values())
        if not lease.owns(root, collection, own):
            raise lease.LeaseHeld(f"collection {collection!r} in {root.url}: this run's lease was broken while it "
                                  "ran (python -m ingest unlock?); not marking the collection complete")
        record = {**summary.to_dict(), "purpose": purpose, "config": manifest["config"],
                  "sources": manifest["sources"]}
        finish(root, collection, sorted(results, key=lambda r: r.shard), record)
    return summary


def write_pretrain_diets(data: str, wait: float = lease.DIETS_WAIT_SECONDS) -> dict[str, dict]:
    """The default diets over every complete pre-training collection under `data`, written holding the
    diets' lease (`shards.diets.write_diets` takes it): after two ingests of different collections finish at
    once, the diets are those of the run that wrote last, which saw both collections complete. Returns
    {diet: manifest}."""
    return write_default_diets(data, wait)


def _remove_stale_temporaries(root: Root, collection: str) -> None:
    """Delete the temporary shard files (tar, idx, catalog part) a killed run of this collection left.

    Called with the collection's lease held, so no live run writes these names; other temporaries (a
    verify's record, another collection's files) are never touched. S3 writes leave none behind."""
    if not root.is_local:
        return
    for rel in (layout.shard_dir(collection), layout.clips_part_dir(collection)):
        folder = Path(root.path(rel))
        for stale in folder.glob(f"{TMP_MARK}*-shard-*") if folder.is_dir() else ():
            stale.unlink(missing_ok=True)
