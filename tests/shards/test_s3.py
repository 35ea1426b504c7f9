"""Ingest into a real S3-compatible server (SeaweedFS `weed mini`): same bytes as a local root, resumable,
verifiable, diets written beside the shards, and no credential in any object written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from shards import layout
from shards.diets import DIETS, write_diet
from shards.executor import make_executor
from shards.verify import verify
from tests.fixtures import esc50, librispeech
from tests.s3server import s3_server  # noqa: F401

pytestmark = pytest.mark.slow

PREFIX = "run1"
COLLECTION = "pretrain"


def corpus_sources(base: Path) -> list[Source]:
    """LibriSpeech (speech) plus ESC-50 (nonspeech), so that all three diets select something."""
    librispeech.build(base / "librispeech")
    esc50.build(base / "esc50")
    return [Source("librispeech", "librispeech", str(base / "librispeech")),
            Source("esc50", "esc50", str(base / "esc50"))]


def _env(name: str) -> str | None:
    return os.environ.get(name)


def config(data: str) -> IngestConfig:
    return IngestConfig(data=data, workers=2, shard_seconds=2.0)


@pytest.fixture(scope="module")
def built(s3_server, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """One S3 run and one local run of the same sources and settings."""
    # Guard: shard writers that missed AWS_ENDPOINT_URL would talk to real AWS (see the last test).
    with make_executor(2) as pool:
        seen = pool.submit(_env, "AWS_ENDPOINT_URL").result()
    if seen != s3_server.endpoint_url:
        pytest.fail(f"worker processes see AWS_ENDPOINT_URL={seen!r}, not the test server's "
                    f"{s3_server.endpoint_url!r}: the forkserver started before the S3 fixture set it "
                    "(make_executor's workers do not start with the driver's current environment)")
    base = tmp_path_factory.mktemp("s3ingest")
    sources = corpus_sources(base / "corpora")
    s3_url = s3_server.url(PREFIX)
    local = base / "local"
    summary = build_collection(sources, config(s3_url))
    local_summary = build_collection(sources, config(str(local)))
    return {"server": s3_server, "sources": sources, "url": s3_url, "local": local, "summary": summary,
            "local_summary": local_summary}


def s3_objects(built) -> dict[str, bytes]:
    """Every object under the run's prefix, keyed by its path relative to the data root."""
    server = built["server"]
    return {k[len(PREFIX) + 1:]: server.get(k) for k in server.keys(PREFIX + "/")}


def test_every_collection_file_is_an_s3_object(built):
    keys = set(built["server"].keys(PREFIX + "/"))
    summary = built["summary"]
    assert summary.shards >= 2 and summary.shards_skipped == 0
    shards = [layout.shard_name(i) for i in range(summary.shards)]
    expected = {layout.complete_path(COLLECTION), layout.shard_index_path(COLLECTION),
                layout.manifest_path(COLLECTION), layout.plan_path(COLLECTION)}
    for shard in shards:
        expected |= {layout.tar_path(COLLECTION, shard), layout.idx_path(COLLECTION, shard),
                     layout.clips_part_path(COLLECTION, shard)}
    missing = {f"{PREFIX}/{rel}" for rel in expected} - keys
    assert not missing, f"not on S3: {sorted(missing)}"
    assert not [k for k in keys if "/.tmp-" in k or k.rsplit("/", 1)[-1].startswith(".tmp-")]
    assert json.loads(built["server"].get(f"{PREFIX}/{layout.complete_path(COLLECTION)}"))["shards"] == summary.shards


def test_verify_reads_the_s3_root(built):
    report = verify(built["url"])
    assert report.ok, report.problems
    assert report.verified == [COLLECTION] and built["server"].get(f"{PREFIX}/{layout.verified_path(COLLECTION)}")
    assert report.shards == built["summary"].shards
    assert report.clips == sum(c["clips"] for c in built["summary"].corpora.values())


def test_s3_bytes_equal_a_local_run(built):
    objects, local = s3_objects(built), built["local"]
    assert built["summary"].to_dict() == built["local_summary"].to_dict()
    compared = 0
    for rel, data in objects.items():
        if rel.endswith((".tar", ".idx")) or rel.startswith(layout.clips_part_dir(COLLECTION)):
            assert data == (local / rel).read_bytes(), f"{rel}: S3 bytes differ from the local run"
            compared += 1
    assert compared == 3 * built["summary"].shards
    local_files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert set(objects) - {layout.verified_path(COLLECTION)} == local_files  # only the S3 run was verified


def test_rerun_on_s3_skips_every_shard(built):
    before = {rel: data for rel, data in s3_objects(built).items() if rel.endswith(".tar")}
    again = build_collection(built["sources"], config(built["url"]))
    assert again.shards == built["summary"].shards
    assert again.shards_skipped == again.shards
    after = {rel: data for rel, data in s3_objects(built).items() if rel.endswith(".tar")}
    assert after == before


def test_no_credentials_in_any_object(built):
    server = built["server"]
    for rel, data in s3_objects(built).items():
        for secret in (server.secret_key, server.access_key):
            assert secret.encode() not in data, f"{rel} holds a credential"
    for rel in (layout.complete_path(COLLECTION), layout.manifest_path(COLLECTION)):
        text = server.get(f"{PREFIX}/{rel}").decode()
        assert server.secret_key not in text and server.access_key not in text
        assert "AWS_" not in text and server.endpoint_url not in text


def test_diets_on_s3(built):
    server, url = built["server"], built["url"]
    manifests = {diet: write_diet(url, diet) for diet in DIETS}
    for diet, written in manifests.items():
        read = json.loads(server.get(f"{PREFIX}/{layout.diet_manifest_path(diet)}"))
        assert read == json.loads(json.dumps(written))
        assert read["clips"] > 0
        for entry in read["shards"]:
            idx = server.get(f"{PREFIX}/{entry['idx']}").decode()
            assert len(idx.splitlines()) == entry["clips"] + 1  # header, then one line per sample
            assert f"{PREFIX}/{entry['tar']}" in server.keys(f"{PREFIX}/{entry['tar']}")
    assert set(manifests["speech"]["per_corpus"]) == {"librispeech"}
    assert set(manifests["nonspeech"]["per_corpus"]) == {"esc50"}
    assert manifests["all"]["clips"] == manifests["speech"]["clips"] + manifests["nonspeech"]["clips"]
    # A diet idx lists a subset of the full idx's lines, for the same tar.
    full = {e["shard"]: server.get(f"{PREFIX}/{layout.idx_path(COLLECTION, e['shard'])}").decode().splitlines()
            for e in manifests["all"]["shards"]}
    for entry in manifests["speech"]["shards"]:
        lines = server.get(f"{PREFIX}/{entry['idx']}").decode().splitlines()
        assert set(lines[1:]) <= set(full[entry["shard"]][1:])


def test_process_workers_see_environment_set_after_the_first_pool(s3_server, monkeypatch):  # noqa: F811
    """AWS_* set after a process's first pool (a notebook, a test session) must reach the shard writers;
    a forkserver pool kept the environment of its first use."""
    with make_executor(2) as pool:
        pool.submit(_env, "PATH").result()  # any process server a start method keeps is running now
    monkeypatch.setenv("AUDIODIET_PROBE", "set-after-first-pool")
    with make_executor(2) as pool:
        assert pool.submit(_env, "AUDIODIET_PROBE").result() == "set-after-first-pool"
