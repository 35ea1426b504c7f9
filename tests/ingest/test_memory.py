"""A shard job holds one clip at a time: its peak memory does not grow with the number of clips."""

import tracemalloc

from ingest.collection import shard_jobs
from ingest.config import Source
from ingest.listing import list_sources
from ingest.plan import build_plan
from ingest.probe import probe_listing
from ingest.synth import nonspeech, write_audio
from ingest.write import write_shard
from shards.executor import InlineExecutor
from tests.conftest import small_config


def _peak_for(tmp_path, clips: int) -> int:
    write_audio(tmp_path / f"src{clips}" / "long.wav", nonspeech(10.0 * clips, 44100, seed=1), 44100, channels=2)
    cfg = small_config(tmp_path / f"d{clips}", shard_seconds=1e9)
    source = Source("long", "folder", str(tmp_path / f"src{clips}"), domain="nonspeech")
    listing = list_sources([source], cfg, "pretrain", InlineExecutor())
    probes = probe_listing(InlineExecutor(), listing, cfg.probe_batch, 1)
    plan, _ = build_plan(listing, probes, probes.column("reason").is_null().to_numpy(zero_copy_only=False), cfg)
    (job,) = list(shard_jobs(plan, cfg, listing.bases))
    assert job.rows.num_rows == clips
    tracemalloc.start()
    write_shard(job)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_shard_job_memory_is_independent_of_clip_count(tmp_path):
    few, many = _peak_for(tmp_path, 3), _peak_for(tmp_path, 30)
    assert many < 1.5 * few  # 10x the audio, not 10x the memory


def test_a_shard_job_carries_its_own_rows_not_the_plan(tmp_path):
    """A job travels to its worker pickled; a zero-copy slice of the plan would pickle the whole plan's
    buffers with it (27 MB a job at 200,000 clips)."""
    import pickle

    import numpy as np
    import pyarrow as pa

    from ingest.plan import PLAN_SCHEMA

    n, shards = 20_000, 10
    values = {"shard": [f"shard-{i * shards // n:06d}" for i in range(n)], "position": np.arange(n) % (n // shards),
              "key": [f"c__rec{i:07d}__000000000" for i in range(n)], "corpus": ["c"] * n, "domain": ["speech"] * n,
              "subset": [None] * n, "split": ["train"] * n, "label": [None] * n, "speaker": [None] * n,
              "source": [f"rec{i:07d}.wav" for i in range(n)], "start": np.zeros(n), "seconds": np.ones(n),
              "stored_seconds": np.ones(n), "source_rate": np.full(n, 16000), "source_channels": np.ones(n),
              "extra": ["{}"] * n}
    plan = pa.table({f.name: pa.array(values[f.name]).cast(f.type) for f in PLAN_SCHEMA}, schema=PLAN_SCHEMA)
    jobs = list(shard_jobs(plan, small_config(tmp_path / "d"), {"c": str(tmp_path)}))
    whole = len(pickle.dumps(plan))
    assert [j.rows.num_rows for j in jobs] == [n // shards] * shards
    assert all(j.rows.equals(plan.slice(i * n // shards, n // shards)) for i, j in enumerate(jobs))
    assert max(len(pickle.dumps(j)) for j in jobs) < 1.5 * whole / shards
