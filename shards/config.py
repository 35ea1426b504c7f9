"""The shards stage's settings, each default in one place with the reason for it.

`python -m shards` derives its flags from these fields (`shards.configs.add_arguments`/`from_args`);
library functions take the config (or its defaults) instead of repeating literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _doc(text: str) -> dict:
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """How long to wait for an object store (S3, HTTP(S)) and how often to try again: every remote read
    and listing of the shards layer goes through these (`shards.storage.filesystem`, `shards.reader`)."""

    # 10 s: a healthy endpoint accepts a connection in milliseconds; one that does not within 10 s is down.
    connect_timeout_s: float = field(default=10.0, metadata=_doc("seconds to wait for a connection"))
    # 30 s: a ranged GET of a 1-GB shard's member, or a Parquet footer, arrives in well under a second;
    # an endpoint that accepts connections but sends nothing must not keep a run silent for minutes.
    read_timeout_s: float = field(default=30.0, metadata=_doc("seconds to wait for a response's bytes"))
    # 3 attempts in the client (botocore / s3fs) per request: the reader's own backoff below carries
    # longer outages (a server restart), so the two do not multiply into minutes.
    client_attempts: int = field(default=3, metadata=_doc("attempts per request inside the S3 client"))
    # 8 tries with backoff 0.2, 0.4 ... capped at 4 s: ~14 s of patience, enough for a server restart
    # (tests/shards/test_streaming.py keeps a server down 8 s mid-epoch).
    retries: int = field(default=8, metadata=_doc("tries of a failing batch of ranged reads"))
    backoff_s: float = field(default=0.2, metadata=_doc("first backoff between tries (doubles)"))
    backoff_cap_s: float = field(default=4.0, metadata=_doc("longest backoff between tries"))

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "backoff_s", "backoff_cap_s"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name}={value!r}: expected a finite number of seconds > 0")
        for name in ("client_attempts", "retries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected 1 or more")


@dataclass(frozen=True, slots=True)
class LoaderConfig:
    """What the loaders, `stats` and `stream` share."""

    # One seed for order, crops and stats picks, so every run of the same diet is reproducible.
    seed: int = field(default=42, metadata=_doc("seed of the sampler's order and crops"))
    # 256: BYOL-A's batch size (SPEC, paper).
    batch_size: int = field(default=256, metadata=_doc("crops per batch"))
    # 10,000 crops: the scalar mean/std are then stable to ~1e-3 (a mean over ~60 M log-mel bins).
    stats_crops: int = field(default=10_000, metadata=_doc("random training crops the stats average over"))
    # torch DataLoader worker processes (0: in-process).
    workers: int = field(default=0, metadata=_doc("torch DataLoader worker processes"))
    # DALI: processes reading crops for the external source (0: in the pipeline's thread).
    read_workers: int = field(default=0, metadata=_doc("DALI: processes reading crops (0: in-thread)"))
    # DALI CPU threads: the pipeline only moves crops to the GPU and runs the FFT there; 2 suffice.
    dali_threads: int = field(default=2, metadata=_doc("DALI pipeline CPU threads"))
    # DALI prefetch: 2 batches queued on the GPU, 4 read ahead by the parallel external source, measured
    # on one H200 (README "GPU"): deeper queues gave no more crops/s and held more memory.
    dali_queue: int = field(default=2, metadata=_doc("DALI pipeline prefetch queue depth"))
    dali_read_queue: int = field(default=4, metadata=_doc("DALI external source prefetch (read workers)"))
    # Local shard files kept open per reader (an LRU): 1,200 shards must not exhaust the fd limit.
    open_files: int = field(default=64, metadata=_doc("local shard files a reader keeps open"))
    # Refuse to read collections that `python -m shards verify` has not verified as they are now.
    require_verified: bool = field(default=False, metadata=_doc("read only verified collections"))

    def __post_init__(self) -> None:
        for name in ("batch_size", "stats_crops", "dali_threads", "dali_queue", "dali_read_queue", "open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected 1 or more")
        for name in ("workers", "read_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected 0 or more")


BACKENDS = ("auto", "torch", "dali")  # `stream --backend`: auto = DALI on a GPU when there is one, else torch
DEFAULT_REMOTE = RemoteConfig()
DEFAULT_LOADER = LoaderConfig()


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """Where `python -m shards verify` runs its shard jobs (as ingest does: local pool, or a Dask cluster)."""

    # None: one process per core here; 0: in-process (profiling). A job streams one tar, one member at a time.
    workers: int | None = field(default=None, metadata=_doc("local worker processes (0: in-process)"))
    scheduler: str | None = field(default=None, metadata=_doc("Dask scheduler address (tcp://host:8786)"))
    jobqueue: str | None = field(default=None, metadata=_doc("start a dask-jobqueue cluster (slurm, pbs, ...)"))

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers={self.workers!r}: expected 0 (in-process) or more")


DEFAULT_VERIFY = VerifyConfig()
