"""The ingest engine: sources -> listing -> fingerprint -> probe -> frozen plan -> shard jobs -> commit.

Resumable by construction: the plan is frozen before any job runs, every file is committed atomically,
a shard's catalog part marks it done, and the collection's completion record is written last. Re-running
skips committed shards; a run killed anywhere and re-run yields byte-identical shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ingest import corpora, lease
from ingest.config import IngestConfig, Source
from ingest.keys import check_name, clip_key
from ingest.plan import Listed, Probe, build_plan, deduplicate, needs_audio_hash, probe_batch, region_problem
from ingest.remote import is_url, shadow_tree
from ingest.write import ShardJob, ShardResult, write_shard
from shards import layout
from shards.catalog import (DUPLICATES_SCHEMA, PURPOSES, QUARANTINE_SCHEMA, SHARD_INDEX_SCHEMA, read_catalog,
                            read_table, write_table)
from shards.executor import bounded_map, default_workers, make_executor
from shards.storage import TMP_MARK, Root

log = logging.getLogger(__name__)


class FingerprintMismatch(ValueError):
    """A collection exists with other settings or other sources: refuse rather than mix them."""


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

    def corpus(self, name: str) -> dict:
        return self.corpora.setdefault(name, {"recordings": 0, "clips": 0, "seconds": 0.0, "quarantined": 0,
                                              "duplicates": 0, "tails_dropped": 0, "held_out": 0})

    def to_dict(self) -> dict:
        """The collection's facts (not this run's: how many shards were skipped is left out, so a
        resumed run writes the same completion record as an uninterrupted one)."""
        return {"collection": self.collection, "fingerprint": self.fingerprint, "corpora": self.corpora,
                "shards": self.shards, "quarantined": self.quarantined, "duplicates": self.duplicates}


class Progress:
    """Callbacks the CLI turns into a progress bar; the library itself never prints."""

    def planned(self, clips: int, seconds: float) -> None: ...

    def shard_done(self, result: ShardResult) -> None: ...


def cuts(source: Source, cfg: IngestConfig, purpose: str) -> bool:
    """Whether `source`'s recordings are cut into clips: never for transfer datasets; a folder/csv corpus
    the user keeps whole (`cut = false`) stays whole; else Table I's rule (folder/csv: cut), and
    `--clip-seconds` cuts every other corpus too."""
    if purpose == "transfer":
        return False
    if source.cut is not None:
        return source.cut
    return corpora.get(source.adapter).cut or cfg.clip_seconds is not None


def list_sources(sources: Sequence[Source], cfg: IngestConfig, purpose: str = "pretrain",
                 held_out: dict[str, int] | None = None) -> list[Listed]:
    """Every recording of every source, in source order then adapter order (deterministic).

    A source root may be a URL (`s3://bucket/LibriSpeech`): the adapter then reads a local shadow of the
    layout and each recording's `source_path` is the object's URL. A pre-training collection takes only
    `train` recordings (a labelled CSV's valid/test rows are held-out audio); how many were left out per
    corpus is added to `held_out`.
    """
    listed: list[Listed] = []
    held_out = {} if held_out is None else held_out
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    for src in sources:
        check_name(src.name)
        adapter = corpora.get(src.adapter)
        options = dict(src.options)
        if adapter.kind == "custom":
            options.setdefault("domain", src.domain or adapter.domain)
        local_root, url_base = _local_view(src.root, adapter.root_is_file)
        base = adapter.base_dir(local_root)
        if url_base is not None:  # the URL of the folder that recording paths are relative to
            shadow_top = local_root.parent if adapter.root_is_file else local_root
            rel = base.relative_to(shadow_top).as_posix()
            url_base = url_base if rel == "." else f"{url_base}/{rel}"
        count, cut = 0, cuts(src, cfg, purpose)
        for rec in adapter.recordings(local_root, options):
            if purpose == "pretrain" and rec.split != "train":
                held_out[src.name] = held_out.get(src.name, 0) + 1
                continue
            if rec.corpus != src.name:  # a user may ingest one adapter twice under two names
                rec = type(rec).from_dict({**rec.to_dict(), "corpus": src.name})
            local = base / rec.path
            try:
                size = local.stat().st_size
            except OSError:
                size = -1
            source_path = f"{url_base}/{rec.path}" if url_base is not None else str(local.absolute())
            listed.append(Listed(rec, source_path, cut, size))
            count += 1
        if count == 0:
            only = " in the train split" if held_out.get(src.name) else ""
            raise ValueError(f"{src.name}: no recordings{only} found under {src.root!r} (adapter {src.adapter})")
        log.info("%s: %d recordings", src.name, count)
    return listed


def _local_view(root: str, root_is_file: bool) -> tuple[Path, str | None]:
    """(local path adapters read, URL of the folder it mirrors or None for local roots)."""
    if not is_url(root):
        return Path(root), None
    if root_is_file:  # csv: the metadata file's folder is the corpus
        folder, _, name = root.rstrip("/").rpartition("/")
        return shadow_tree(folder) / name, folder
    return shadow_tree(root), root.rstrip("/")


def fingerprint(sources: Sequence[Source], listed: Sequence[Listed], cfg: IngestConfig) -> str:
    """sha256 over the byte-relevant config, the sources and the listing (records + file sizes)."""
    h = hashlib.sha256()
    # Where a corpus lives is not what it holds: roots stay out, so a moved corpus or a relative path
    # given from another folder resumes the same collection (the listing carries paths and sizes).
    described = [{k: v for k, v in s.to_dict().items() if k != "root"} for s in sources]
    h.update(json.dumps({"config": cfg.fingerprint_fields(), "sources": described}, sort_keys=True,
                        default=str).encode())
    for item in listed:
        h.update(json.dumps([item.recording.to_dict(), item.size, item.cut], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _probe_all(executor, listed: Sequence[Listed], cfg: IngestConfig) -> list[Probe]:
    want_hash = needs_audio_hash(listed)
    items = [(i, x.source_path, want_hash[i]) for i, x in enumerate(listed)]
    batches = [items[i:i + cfg.probe_batch] for i in range(0, len(items), cfg.probe_batch)]
    probes: list[Probe | None] = [None] * len(listed)
    for future in as_completed([executor.submit(probe_batch, b) for b in batches]):
        for pr in future.result():
            probes[pr.index] = pr
    return probes  # type: ignore[return-value]


def build_collection(sources: Sequence[Source], cfg: IngestConfig, progress: Progress | None = None,
                     purpose: str = "pretrain") -> Summary:
    """Ingest `sources` into `shards/<cfg.collection>/` under `cfg.data`; returns the run's summary.

    `purpose` ("pretrain" or "transfer") is recorded so that diets never draw on held-out datasets.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r}, expected one of {PURPOSES}")
    progress = progress or Progress()
    collection = layout.check_collection(cfg.collection)
    root = Root(cfg.data)
    with lease.held(root, collection) as own:
        held_out: dict[str, int] = {}
        listed = list_sources(sources, cfg, purpose, held_out)
        fp = fingerprint(sources, listed, cfg)
        summary = Summary(collection, fp)
        for item in listed:
            summary.corpus(item.recording.corpus)["recordings"] += 1
        for corpus, n in held_out.items():
            summary.corpus(corpus)["held_out"] = n
        manifest = {"collection": collection, "fingerprint": fp, "purpose": purpose,
                    "config": cfg.fingerprint_fields(), "sources": [s.to_dict() for s in sources]}
        with make_executor(cfg.workers, cfg.scheduler, cfg.jobqueue) as executor:
            plan = _frozen_plan(root, collection, manifest, listed, cfg, executor, summary)
            progress.planned(plan.num_rows, float(pc.sum(plan.column("seconds")).as_py() or 0.0))
            _remove_stale_temporaries(root, collection)
            results = []
            in_flight = 2 * (cfg.workers or default_workers()) if not (cfg.scheduler or cfg.jobqueue) else 256
            for result in bounded_map(executor, write_shard, _jobs(plan, cfg, collection), in_flight):
                results.append(result)
                progress.shard_done(result)
        if not lease.owns(root, collection, own):
            raise lease.LeaseHeld(f"collection {collection!r} in {root.url}: this run's lease was broken while it "
                                  "ran (python -m ingest unlock?); not marking the collection complete")
        _finish(root, collection, sorted(results, key=lambda r: r.shard), summary, manifest)
    return summary


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


def _frozen_plan(root: Root, collection: str, manifest: dict, listed: Sequence[Listed], cfg: IngestConfig,
                 executor, summary: Summary) -> pa.Table:
    """The plan on disk if this collection was planned with the same fingerprint; else make and freeze it."""
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
            meta = json.loads(plan.schema.metadata[b"audiodiet.plan"])
            _count_plan_outcomes(summary, meta)
            return _relocate(plan.replace_schema_metadata(None), listed)
    probes = _probe_all(executor, listed, cfg)
    probes = [pr if pr.reason else replace(pr, reason=region_problem(listed[pr.index].recording, pr))
              for pr in probes]
    keep, dropped = deduplicate(listed, probes)
    plan, tails = build_plan(listed, probes, keep, cfg)
    probe_quarantine = [{"collection": collection, "corpus": listed[i].recording.corpus,
                         "source": listed[i].recording.path, "key": None, "stage": "probe", "reason": pr.reason}
                        for i, pr in enumerate(probes) if pr.reason]
    write_table(root, layout.quarantine_path(collection, "probe"),
                 pa.Table.from_pylist(probe_quarantine, schema=QUARANTINE_SCHEMA))
    write_table(root, layout.duplicates_path(collection), pa.Table.from_pylist(dropped, schema=DUPLICATES_SCHEMA))
    meta = {"quarantined": _count_by(probe_quarantine), "duplicates": _count_by(dropped), "tails_dropped": tails}
    root.write_bytes(manifest_rel, json.dumps(manifest, indent=1, sort_keys=True).encode())
    write_table(root, plan_rel, plan, {"audiodiet.plan": meta})
    _count_plan_outcomes(summary, meta)
    return plan


def _relocate(plan: pa.Table, listed: Sequence[Listed]) -> pa.Table:
    """The frozen plan with each clip's `source_path` taken from this run's listing: the fingerprint
    ignores where a corpus lives, so a corpus moved (or mounted elsewhere) between runs is read from
    where it is now, never from where it was."""
    where = {(x.recording.corpus, x.recording.path): x.source_path for x in listed}
    paths = [where[(c, p)] for c, p in zip(plan.column("corpus").to_pylist(), plan.column("source").to_pylist())]
    index = plan.schema.get_field_index("source_path")
    return plan.set_column(index, "source_path", pa.array(paths, type=pa.string()))


def _count_by(rows: Sequence[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["corpus"]] = out.get(r["corpus"], 0) + 1
    return out


def _count_plan_outcomes(summary: Summary, meta: dict) -> None:
    for key, field_name in (("quarantined", "quarantined"), ("duplicates", "duplicates"),
                            ("tails_dropped", "tails_dropped")):
        for corpus, n in meta[key].items():
            summary.corpus(corpus)[field_name] += n
    summary.quarantined += sum(meta["quarantined"].values())
    summary.duplicates += sum(meta["duplicates"].values())


def _jobs(plan: pa.Table, cfg: IngestConfig, collection: str) -> Iterator[ShardJob]:
    """One job per shard, made only when submitted: the plan is in (shard, position) order, so each job is
    one contiguous slice of the Arrow table and the driver never holds every row as Python objects."""
    shards = plan.column("shard").to_numpy(zero_copy_only=False)
    if len(shards) == 0:  # everything quarantined or deduplicated: a complete, empty collection
        return
    starts = [0] + [i for i in range(1, len(shards)) if shards[i] != shards[i - 1]] + [len(shards)]
    for begin, end in zip(starts[:-1], starts[1:]):
        rows = plan.slice(begin, end - begin).to_pylist()
        yield ShardJob(cfg.data, collection, rows[0]["shard"], cfg.codec, tuple(rows))


def _finish(root: Root, collection: str, results: Sequence[ShardResult], summary: Summary,
            manifest: dict) -> None:
    """Shard index table, then the completion record (last)."""
    for r in results:
        summary.shards += 1
        summary.shards_skipped += int(r.skipped)
        for corpus, (clips, seconds) in r.per_corpus.items():
            entry = summary.corpus(corpus)
            entry["clips"] += clips
            entry["seconds"] += seconds
    decode_q = _decode_quarantine_counts(root, collection)
    for corpus, n in decode_q.items():
        summary.corpus(corpus)["quarantined"] += n
    summary.quarantined += sum(decode_q.values())
    index = pa.Table.from_pylist([
        {"shard": r.shard, "path": layout.tar_path(collection, r.shard), "idx": layout.idx_path(collection, r.shard),
         "clips": r.clips, "bytes": r.bytes, "seconds": r.seconds, "sha256": r.sha256} for r in results],
        schema=SHARD_INDEX_SCHEMA)
    write_table(root, layout.shard_index_path(collection), index)
    record = {**summary.to_dict(), "purpose": manifest["purpose"], "config": manifest["config"],
              "sources": manifest["sources"]}
    root.write_bytes(layout.complete_path(collection), json.dumps(record, indent=1, sort_keys=True).encode())


def _decode_quarantine_counts(root: Root, collection: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in root.listdir(layout.quarantine_dir(collection), ".parquet"):
        if name == "probe.parquet":
            continue
        table = read_table(root, f"{layout.quarantine_dir(collection)}/{name}")
        for corpus in table.column("corpus").to_pylist():
            counts[corpus] = counts.get(corpus, 0) + 1
    return counts


WINDOW_SCHEMA = pa.schema([
    ("key", pa.string()), ("video_id", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
    ("offset", pa.float64()), ("label", pa.string()), ("split", pa.string()), ("limited_train", pa.bool_()),
])


def write_windows(source: Source, cfg: IngestConfig, batch: int = 100_000) -> int:
    """For datasets whose examples are windows of long recordings (AVA-Speech: 1-s clips at a 10-ms hop),
    write `catalog/<collection>/windows.parquet` pointing into the shard samples; no audio is copied.
    `offset` is the window start within its sample `key`. Returns the number of windows (0: none defined).
    """
    import importlib

    module = importlib.import_module(f"ingest.corpora.{source.adapter}")
    if not hasattr(module, "windows"):
        return 0
    adapter = corpora.get(source.adapter)
    local_root, _ = _local_view(source.root, adapter.root_is_file)
    root_dir = adapter.resolve_root(local_root)
    samples = {r.path: r for r in adapter.recordings(local_root, source.options)}
    import pyarrow.parquet as pq

    root, count = Root(cfg.data), 0
    catalog = read_catalog(root, cfg.collection, ["key", "seconds"])
    # only windows inside audio that was written (a quarantined or shorter-than-annotated movie has fewer)
    written = dict(zip(catalog.column("key").to_pylist(), catalog.column("seconds").to_pylist()))
    with root.writer(layout.windows_path(cfg.collection)) as out:
        writer = pq.ParquetWriter(out.file, WINDOW_SCHEMA, compression="zstd")
        rows: list[dict] = []
        for w in module.windows(root_dir, **source.options):
            rec = samples[w.path]
            key = clip_key(source.name, rec.path, rec.start)
            if w.end - rec.start > written.get(key, -1.0) + 1e-6:
                continue
            rows.append({"key": key, "video_id": w.video_id,
                         "start": w.start, "end": w.end, "offset": round(w.start - rec.start, 6),
                         "label": w.label, "split": w.split, "limited_train": w.limited_train})
            if len(rows) >= batch:
                writer.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA))
                count, rows = count + len(rows), []
        writer.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA))
        writer.close()
    return count + len(rows)
