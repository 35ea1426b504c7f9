"""Ingest settings: one frozen dataclass; its fields are the CLI flags and the TOML keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from shards.audio import CODECS

TAILS = ("keep", "pad", "drop")


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
        if self.codec not in CODECS:
            raise ValueError(f"codec={self.codec!r}, expected one of {CODECS}")
        if self.tail not in TAILS:
            raise ValueError(f"tail={self.tail!r}, expected one of {TAILS}")
        for name in ("segment_seconds", "shard_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.clip_seconds is not None and self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds={self.clip_seconds} must be > 0")
        if self.min_tail_seconds < 0:
            raise ValueError(f"min_tail_seconds={self.min_tail_seconds} must be >= 0")
        if self.probe_batch < 1:
            raise ValueError(f"probe_batch={self.probe_batch} must be >= 1")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0 (0 runs in-process)")

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
