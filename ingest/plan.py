"""From recordings to a frozen plan: probe headers, remove duplicates, cut clips, interleave, assign shards.

The plan is a pure function of (recordings, probe results, config), so the same input always gives the
same shards; it is written to `catalog/<collection>/plan.parquet` before any shard job runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.config import IngestConfig
from ingest.keys import clip_key
from ingest.records import Recording
from shards import audio
from shards.layout import shard_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listed:
    """A recording with where its file is and how the engine should cut it."""

    recording: Recording
    source_path: str  # absolute path or URL the workers open
    cut: bool  # cut into clips (engine.cuts: Table I "^", folder/csv unless kept whole, --clip-seconds)
    size: int = -1  # bytes, for the fingerprint (-1: missing; the probe quarantines it)


@dataclass(frozen=True, slots=True)
class Probe:
    """Header facts of one listed recording, or why it is quarantined."""

    index: int
    rate: int = 0
    channels: int = 0
    frames: int = 0
    audio_hash: str | None = None
    reason: str | None = None


def probe_batch(batch: Sequence[tuple[int, str, bool]]) -> list[Probe]:
    """Runs on a worker: header probe of (index, path, want_hash) items; hashes decoded audio on request."""
    out = []
    for index, path, want_hash in batch:
        try:
            info = audio.probe(path)
            digest = _audio_hash(path) if want_hash else None
            out.append(Probe(index, info.samplerate, info.channels, info.frames, digest))
        except audio.BadAudio as bad:
            out.append(Probe(index, reason=bad.reason))
    return out


def _audio_hash(path: str) -> str:
    """sha256 of the decoded PCM16 samples: finds the same sound re-encoded or renamed."""
    return hashlib.sha256(np.ascontiguousarray(audio.read_all_pcm16(path)).tobytes()).hexdigest()


def needs_audio_hash(listed: Sequence[Listed]) -> list[bool]:
    """Hash every member of a dedup group that has at least one member without a `dedup_key`."""
    groups = {x.recording.dedup_group for x in listed
              if x.recording.dedup_group and x.recording.dedup_key is None}
    return [x.recording.dedup_group in groups for x in listed]


def deduplicate(listed: Sequence[Listed], probes: Sequence[Probe]) -> tuple[list[int], list[dict]]:
    """Indices to keep and rows describing dropped duplicates (first listed wins, by id then by audio)."""
    keep, dropped = [], []
    seen_key: dict[tuple[str, str], str] = {}
    seen_hash: dict[tuple[str, str], str] = {}
    for i, (item, pr) in enumerate(zip(listed, probes)):
        rec = item.recording
        if pr.reason:  # quarantined: it must not shadow a healthy copy listed later
            keep.append(i)
            continue
        group = rec.dedup_group
        if group and rec.dedup_key and (group, rec.dedup_key) in seen_key:
            dropped.append(_dup_row(rec, seen_key[(group, rec.dedup_key)], f"same id {rec.dedup_key}"))
            continue
        if group and pr.audio_hash and (group, pr.audio_hash) in seen_hash:
            dropped.append(_dup_row(rec, seen_hash[(group, pr.audio_hash)], "same decoded audio"))
            continue
        if group and rec.dedup_key:
            seen_key[(group, rec.dedup_key)] = f"{rec.corpus}:{rec.path}"
        if group and pr.audio_hash:
            seen_hash[(group, pr.audio_hash)] = f"{rec.corpus}:{rec.path}"
        keep.append(i)
    return keep, dropped


def _dup_row(rec: Recording, kept: str, why: str) -> dict:
    return {"corpus": rec.corpus, "path": rec.path, "duplicate_of": kept, "reason": why}


def cut_points(seconds: float, length: float | None, cfg: IngestConfig) -> tuple[list[tuple[float, float, float]], int]:
    """[(offset, valid_seconds, stored_seconds)] for one recording, and how many short tails were dropped.

    A recording shorter than one clip is kept whole; the tail policy applies to what remains after at
    least one full clip.
    """
    if length is None or seconds <= length + 1e-9:
        return [(0.0, seconds, seconds)], 0
    clips, dropped = [], 0
    for start in audio.clip_starts(seconds, length):
        valid = min(length, seconds - start)
        if valid >= length - 1e-9:
            clips.append((start, length, length))
        elif cfg.tail == "drop" or valid < cfg.min_tail_seconds:
            dropped += 1
        else:
            clips.append((start, valid, length if cfg.tail == "pad" else valid))
    return clips, dropped


PLAN_SCHEMA = pa.schema([
    ("shard", pa.string()), ("position", pa.int32()), ("key", pa.string()), ("corpus", pa.string()),
    ("domain", pa.string()), ("subset", pa.string()), ("split", pa.string()), ("label", pa.string()),
    ("speaker", pa.string()), ("source", pa.string()), ("source_path", pa.string()),
    ("start", pa.float64()), ("seconds", pa.float64()), ("stored_seconds", pa.float64()),
    ("source_rate", pa.int32()), ("source_channels", pa.int32()), ("extra", pa.string()),
])


def region_problem(rec: Recording, pr: Probe) -> str | None:
    """Why a recording's region cannot be cut from its file (checked before planning), or None."""
    file_seconds = pr.frames / pr.rate
    if rec.start >= file_seconds:
        return (f"region starts at {rec.start:.2f}s but the file lasts {file_seconds:.2f}s "
                "(audio cut to the region? set the adapter's offset option)")
    return None


def build_plan(listed: Sequence[Listed], probes: Sequence[Probe], keep: Iterable[int],
               cfg: IngestConfig) -> tuple[pa.Table, dict[str, int]]:
    """Clips of every kept, healthy recording, interleaved by a seeded hash of the key, cut into shards."""
    rows: list[dict[str, Any]] = []
    tails_dropped: dict[str, int] = {}
    for i in keep:
        item, pr = listed[i], probes[i]
        if pr.reason:
            continue
        rec = item.recording
        file_seconds = pr.frames / pr.rate
        end = file_seconds if rec.duration is None else min(file_seconds, rec.start + rec.duration)
        length = (cfg.clip_seconds or cfg.segment_seconds) if item.cut else None
        clips, dropped = cut_points(max(0.0, end - rec.start), length, cfg)
        tails_dropped[rec.corpus] = tails_dropped.get(rec.corpus, 0) + dropped
        extra = json.dumps(dict(rec.extra), sort_keys=True)
        for offset, valid, stored in clips:
            start = rec.start + offset
            rows.append({
                "key": clip_key(rec.corpus, rec.path, start), "corpus": rec.corpus, "domain": rec.domain,
                "subset": rec.subset, "split": rec.split, "label": rec.label, "speaker": rec.speaker,
                "source": rec.path, "source_path": item.source_path, "start": start, "seconds": valid,
                "stored_seconds": stored, "source_rate": pr.rate, "source_channels": pr.channels,
                "extra": extra,
            })
    _check_unique(rows)
    rows.sort(key=lambda r: hashlib.blake2b(f"{cfg.seed}:{r['key']}".encode(), digest_size=8).digest())
    shard, position, filled = 0, 0, 0.0
    for row in rows:
        if position and filled + row["stored_seconds"] > cfg.shard_seconds:
            shard, position, filled = shard + 1, 0, 0.0
        row["shard"], row["position"] = shard_name(shard), position
        position, filled = position + 1, filled + row["stored_seconds"]
    return pa.Table.from_pylist(rows, schema=PLAN_SCHEMA), tails_dropped


def _check_unique(rows: list[dict]) -> None:
    seen: dict[str, str] = {}
    for r in rows:
        if r["key"] in seen:
            raise ValueError(f"two clips map to key {r['key']!r}: {seen[r['key']]!r} and {r['source']!r} "
                             "(paths that differ only by '/' vs '.' vs '-'); rename one or split the corpus")
        seen[r["key"]] = r["source"]
