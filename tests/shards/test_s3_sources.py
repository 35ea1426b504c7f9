"""Corpora read straight from S3 (no copy of their audio): same shards as from local disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, write_audio
from tests.conftest import build_mixed, small_config
from tests.s3server import s3_server  # noqa: F401

pytestmark = pytest.mark.slow


def _upload(server, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            server.client.put_object(Bucket=server.bucket, Key=f"{prefix}/{path.relative_to(local).as_posix()}",
                                     Body=path.read_bytes())


def test_corpora_on_s3_give_the_same_shards_as_local_corpora(tmp_path, s3_server):  # noqa: F811
    local = build_mixed(tmp_path / "src")
    bad = tmp_path / "src" / "noise" / "zz-truncated.wav"
    full = write_audio(bad, nonspeech(6.0, 44100, seed=9), 44100, channels=2).read_bytes()
    bad.write_bytes(full[: len(full) // 2])
    _upload(s3_server, tmp_path / "src", "corpora")
    remote = [Source("librispeech", "librispeech", s3_server.url("corpora/ls")),
              Source("noise", "folder", s3_server.url("corpora/noise"), domain="nonspeech")]
    a = build_collection(local, small_config(tmp_path / "from-local", workers=2))
    b = build_collection(remote, small_config(tmp_path / "from-s3", workers=2))
    assert a.corpora == b.corpora and b.quarantined == 1  # the truncated object is found over S3 too
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000000.idx", "shard-000001.idx"):
        left = (tmp_path / "from-local" / "shards" / "pretrain" / name).read_bytes()
        assert left == (tmp_path / "from-s3" / "shards" / "pretrain" / name).read_bytes(), name
