"""Ingest settings: one frozen dataclass; its fields are the CLI flags and the TOML keys."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields

from shards.audio import CODECS
from shards.executor import JOBQUEUE_CLUSTERS
from shards.layout import check_collection

TAILS = ("keep", "pad", "drop")
MIN_CLIP_SECONDS = 1.0  # every full clip holds at least one BYOL-A training crop (0.95 s)


def _doc(text: str):
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class IngestConfig:
    data: str = field(default="./data", metadata=_doc("data root: a folder or s3://bucket/prefix"))
    collection: str = field(default="pretrain", metadata=_doc("shards/<collection>/ to write"))
    # WAV (measured, `make bench` / `make gpu-check`): a 0.95-s crop is one 30 KB ranged read, ~21k
    # crops/s per core, enough to feed a GPU; FLAC saves ~30 % of bytes but must be decoded whole
    # (~350 crops/s per core), which caps a 16-core machine far below a GPU's rate.
    codec: str = field(default="wav", metadata=_doc("shard audio codec: wav|flac"))
    # None = Table I: the corpora the paper marks ^ (and folder/csv corpora) are cut; a number cuts every
    # corpus into clips of that length, except folder/csv corpora kept whole (`cut = false`).
    clip_seconds: float | None = field(default=None, metadata=_doc("cut every corpus into clips of this length"))
    segment_seconds: float = field(default=10.0, metadata=_doc("clip length for corpora cut by default"))
    # keep: last clip at its own (valid) length; pad: zero-pad to full length; drop: discard it.
    tail: str = field(default="keep", metadata=_doc("tail policy for cut recordings: keep|pad|drop"))
    # Tails shorter than this are dropped under keep/pad (BYOL-A crops 0.95 s; less is mostly padding).
    min_tail_seconds: float = field(default=1.0, metadata=_doc("shortest tail kept under keep/pad"))
    # ~8 h of 16 kHz PCM16 per shard = ~0.9 GB WAV, ~0.6 GB FLAC: few, large, sequentially read files.
    shard_seconds: float = field(default=28_800.0, metadata=_doc("target audio seconds per shard"))
    seed: int = field(default=0, metadata=_doc("seed of the corpus interleaving order"))
    workers: int | None = field(default=None, metadata=_doc("local worker processes (0 = in-process)"))
    scheduler: str | None = field(default=None, metadata=_doc("Dask scheduler address (runs on that cluster)"))
    jobqueue: str | None = field(default=None, metadata=_doc("start a dask-jobqueue cluster: slurm|pbs|..."))
    probe_batch: int = field(default=256, metadata=_doc("recordings per header-probe job"))

    def __post_init__(self) -> None:
        """Every field checked (type, finite, range) with one line naming it and what was expected."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, value := float(value))
            if isinstance(value, bool) or not isinstance(value, kinds):
                expected = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise ValueError(f"{f.name}={value!r}: expected {expected}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r}: expected a finite number")
        if not self.data.strip():
            raise ValueError("data='': expected a folder (e.g. ./data) or s3://bucket/prefix")
        check_collection(self.collection)
        if self.codec not in CODECS:
            raise ValueError(f"codec={self.codec!r}, expected one of {CODECS}")
        if self.tail not in TAILS:
            raise ValueError(f"tail={self.tail!r}, expected one of {TAILS}")
        if self.shard_seconds <= 0:
            raise ValueError(f"shard_seconds={self.shard_seconds} must be > 0")
        for name in ("segment_seconds", "clip_seconds"):
            value = getattr(self, name)
            if value is not None and value < MIN_CLIP_SECONDS:
                raise ValueError(f"{name}={value} must be >= {MIN_CLIP_SECONDS} (one training crop)")
        length = self.clip_seconds or self.segment_seconds
        if not 0 <= self.min_tail_seconds <= length:
            raise ValueError(f"min_tail_seconds={self.min_tail_seconds} must be between 0 and the clip length {length}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be between 0 and 2**63 - 1")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0 (0 runs in-process)")
        if self.probe_batch < 1:
            raise ValueError(f"probe_batch={self.probe_batch} must be >= 1")
        if self.scheduler is not None and not self.scheduler.strip():
            raise ValueError("scheduler='': expected a Dask scheduler address (tcp://host:8786)")
        if self.jobqueue is not None and self.jobqueue not in JOBQUEUE_CLUSTERS:
            raise ValueError(f"jobqueue={self.jobqueue!r}, expected one of {sorted(JOBQUEUE_CLUSTERS)}")
        if self.scheduler and self.jobqueue:
            raise ValueError("give either scheduler (an existing Dask cluster) or jobqueue (start one), not both")

    def fingerprint_fields(self) -> dict:
        """The settings that change shard bytes; a collection refuses a re-run that changes them."""
        return {k: getattr(self, k) for k in ("codec", "clip_seconds", "segment_seconds", "tail",
                                               "min_tail_seconds", "shard_seconds", "seed")}


@dataclass(frozen=True, slots=True)
class Source:
    """One corpus to ingest: the adapter that reads it, where it lives, adapter options."""

    name: str
    adapter: str
    root: str
    domain: str | None = None  # folder/csv only: the user's domain for their data
    options: dict = field(default_factory=dict)
    # folder/csv only: False keeps each file whole; None follows the adapter (Table I; folder/csv: cut)
    cut: bool | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "adapter": self.adapter, "root": self.root, "domain": self.domain,
                "options": dict(self.options), "cut": self.cut}
