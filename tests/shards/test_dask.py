"""Ingest on a real Dask cluster (LocalCluster, worker processes): the same bytes as an in-process run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from shards import layout
from shards.verify import verify
from tests.fixtures import esc50, librispeech

pytestmark = pytest.mark.slow

COLLECTION = "pretrain"


def corpus_sources(base: Path) -> list[Source]:
    librispeech.build(base / "librispeech")
    esc50.build(base / "esc50")  # 44.1 kHz: the workers resample too
    return [Source("librispeech", "librispeech", str(base / "librispeech")),
            Source("esc50", "esc50", str(base / "esc50"))]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as c:
        yield c


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dask_cluster_writes_the_same_bytes_as_in_process(cluster, tmp_path):
    from distributed import Client

    sources = corpus_sources(tmp_path / "corpora")
    on_dask, inline = tmp_path / "dask", tmp_path / "inline"
    summary = build_collection(sources, IngestConfig(data=str(on_dask), scheduler=cluster.scheduler_address,
                                                     shard_seconds=2.0))
    reference = build_collection(sources, IngestConfig(data=str(inline), workers=0, shard_seconds=2.0))

    assert summary.shards >= 2 and summary.shards_skipped == 0
    assert summary.to_dict() == reference.to_dict()
    got, want = files(on_dask), files(inline)
    assert set(got) == set(want)
    compared = [rel for rel in want if rel.endswith((".tar", ".idx"))
                or rel.startswith(layout.clips_part_dir(COLLECTION)) or rel == layout.shard_index_path(COLLECTION)]
    assert len(compared) == 3 * summary.shards + 1
    for rel in compared:
        assert got[rel] == want[rel], f"{rel}: Dask run differs from the in-process run"
    report = verify(str(on_dask))
    assert report.ok, report.problems
    assert report.shards == summary.shards

    # The jobs really ran on the cluster (the scheduler remembers the task names it has seen).
    with Client(cluster.scheduler_address) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        assert {"probe_batch", "write_shard"} <= set(prefixes)
        assert len(client.scheduler_info()["workers"]) == 2
