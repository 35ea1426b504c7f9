"""A shard job holds one clip at a time: its peak memory does not grow with the number of clips."""

import tracemalloc

from ingest.engine import _jobs
from ingest.plan import Listed, Probe, build_plan
from ingest.records import Recording
from ingest.synth import nonspeech, write_audio
from ingest.write import write_shard
from tests.conftest import small_config


def _peak_for(tmp_path, clips: int) -> int:
    path = write_audio(tmp_path / "long.wav", nonspeech(10.0 * clips, 44100, seed=1), 44100, channels=2)
    rec = Recording(corpus="long", path="long.wav", domain="nonspeech")
    listed = [Listed(rec, str(path), cut=True, size=path.stat().st_size)]
    probes = [Probe(0, 44100, 2, int(10.0 * clips * 44100))]
    cfg = small_config(tmp_path / f"d{clips}", shard_seconds=1e9, clip_seconds=None)
    plan, _ = build_plan(listed, probes, [0], cfg)
    (job,) = list(_jobs(plan, cfg, "pretrain"))
    assert len(job.rows) == clips
    tracemalloc.start()
    write_shard(job)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_shard_job_memory_is_independent_of_clip_count(tmp_path):
    few, many = _peak_for(tmp_path, 3), _peak_for(tmp_path, 30)
    assert many < 1.5 * few  # 10x the audio, not 10x the memory
