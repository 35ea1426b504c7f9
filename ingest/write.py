"""The shard job: plan rows of one shard -> tar + DALI idx + catalog part, committed in that order.

Memory is one clip at a time whatever the corpus size: the tar streams to its (temporary) file. A clip
that fails to decode is quarantined with its reason and left out. The catalog part is written last, so
its presence marks the shard committed and a re-run skips it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from shards import audio, layout
from shards.catalog import (CATALOG_DICTIONARY, CATALOG_SCHEMA, JSON_FIELDS, QUARANTINE_SCHEMA, table_metadata,
                            write_table)
from shards.shardfile import TarWriter, sample_json
from shards.storage import Root

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class ShardJob:
    data: str
    collection: str
    shard: str
    codec: str
    rows: pa.Table  # the shard's slice of the plan (plan.PLAN_SCHEMA), in position order
    bases: dict[str, str]  # corpus -> folder or URL its `source` paths are relative to (this run's)


@dataclass(frozen=True, slots=True)
class ShardResult:
    shard: str
    clips: int
    seconds: float
    bytes: int
    sha256: str
    source_seconds: float = 0.0
    quarantined: tuple[dict, ...] = ()
    skipped: bool = False  # already committed by an earlier run
    per_corpus: dict = field(default_factory=dict)  # corpus -> [clips, seconds]

    def to_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "clips": self.clips, "seconds": self.seconds, "bytes": self.bytes,
                "sha256": self.sha256, "per_corpus": self.per_corpus}


def catalog_record(row: dict, job: ShardJob, frames: int) -> dict:
    """The clip's catalog row (also its `<key>.json`, minus the codec and index line)."""
    out = {k: row.get(k) for k in JSON_FIELDS if k in row and k != "extra"}
    out.update(collection=job.collection, shard=job.shard, frames=frames, sample_rate=audio.SAMPLE_RATE)
    return out


def clip_pcm(row: dict) -> "audio.np.ndarray":
    """Decode, downmix, resample one planned clip to exactly its stored length (int16)."""
    data, rate = audio.read(row["source_path"], row["start"], row["seconds"])
    if len(data) == 0:
        raise audio.BadAudio(f"no audio at {row['start']:.2f}s: the region lies past the end of the file")
    expected = int(round(row["seconds"] * rate))
    if len(data) < expected - 1:  # tolerate one frame of rounding at the file's end
        raise audio.BadAudio(f"truncated: read {len(data)} of {expected} frames at {row['start']:.2f}s")
    mono = audio.to_mono_16k(data, rate)
    return audio.fit_length(audio.to_pcm16(mono), int(round(row["stored_seconds"] * audio.SAMPLE_RATE)))


def plan_digest(keys) -> str:
    """sha256 of a shard's planned keys in order: what its committed catalog part must have been made from."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def write_shard(job: ShardJob) -> ShardResult:
    """Write one shard. A committed shard (its catalog part exists) is not touched again if its part was
    made from this shard's plan (same keys in the same order); any other part (a plan that differs, a part
    from before the check existed) is not trusted: the shard is written again and replaces it."""
    root = Root(job.data)
    part = layout.clips_part_path(job.collection, job.shard)
    digest = plan_digest(job.rows.column("key").to_pylist())
    if root.exists(part):
        meta = table_metadata(root, part, "audiodiet.shard")
        if meta.get("plan") == digest:
            return _committed_result(meta, job.shard)
        log.warning("%s/%s: its committed catalog part does not match the frozen plan; writing the shard again",
                    job.collection, job.shard)
    catalog, quarantined, per_corpus = [], [], {}
    source_seconds = 0.0
    with root.writer(layout.tar_path(job.collection, job.shard)) as out:
        tar = TarWriter(out)
        for row in job.rows.to_pylist():
            row["source_path"] = f"{job.bases[row['corpus']]}/{row['source']}"
            try:
                pcm = clip_pcm(row)
            except audio.BadAudio as bad:
                quarantined.append({"collection": job.collection, "corpus": row["corpus"], "source": row["source"],
                                    "key": row["key"], "stage": "decode", "reason": bad.reason})
                continue
            record = catalog_record(row, job, len(pcm))
            record["extra"] = json.loads(row["extra"])
            idx_line = tar.write(row["key"], {job.codec: audio.encode(pcm, job.codec), "json": sample_json(record)})
            record.update(codec=job.codec, extra=row["extra"], idx_line=idx_line)
            catalog.append(record)
            counts = per_corpus.setdefault(row["corpus"], [0, 0.0])
            counts[0] += 1
            counts[1] += row["seconds"]
            source_seconds += row["seconds"]
        size, sha = tar.close()
    root.write_bytes(layout.idx_path(job.collection, job.shard), tar.index_text().encode())
    quarantine = layout.quarantine_path(job.collection, job.shard)
    if quarantined:
        write_table(root, quarantine, pa.Table.from_pylist(quarantined, schema=QUARANTINE_SCHEMA))
    elif root.exists(quarantine):  # left by an untrusted earlier write of this shard
        root.fs.rm_file(root.path(quarantine))
    result = ShardResult(job.shard, len(catalog), sum(r["frames"] for r in catalog) / audio.SAMPLE_RATE,
                         size, sha, source_seconds, tuple(quarantined), per_corpus=per_corpus)
    write_table(root, part, pa.Table.from_pylist(catalog, schema=CATALOG_SCHEMA),
                {"audiodiet.shard": {**result.to_dict(), "plan": digest}}, CATALOG_DICTIONARY)
    return result


def _committed_result(meta: dict, shard: str) -> ShardResult:
    return ShardResult(shard=shard, clips=meta["clips"], seconds=meta["seconds"], bytes=meta["bytes"],
                       sha256=meta["sha256"], skipped=True, per_corpus=meta["per_corpus"])
