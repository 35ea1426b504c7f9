"""A pre-training run whose data root is on S3 (the weed mini server): checkpoint written there, then resumed."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from shards.storage import Root
from tests.s3server import s3_server  # noqa: F401
from tests.training.test_train import _cfg, demo_data  # noqa: F401
from training.train import pretrain

pytestmark = pytest.mark.slow


def test_checkpoint_on_s3_and_resume(s3_server, demo_data: str):  # noqa: F811
    url = s3_server.url("train-run")
    root = Root(url)
    root.fs.put(demo_data + "/", root.path(""), recursive=True)
    first = pretrain(_cfg(url, run="s3run", epochs=1, max_steps=3))
    assert first.steps == 3
    keys = s3_server.keys("train-run/models/s3run/")
    assert {k.rsplit("/", 1)[-1] for k in keys} >= {"config.json", "checkpoint.pt", "encoder.pt", "metrics.parquet",
                                                      "loss.png", "step-0000000003-rank-0000.pt"}
    second = pretrain(_cfg(url, run="s3run", epochs=1, resume=True))
    assert second.steps == 26 // 4 and second.epochs_done == 1
    with root.fs.open(root.path("models/s3run/metrics.parquet"), "rb") as f:
        steps = pq.read_table(f).column("step").to_pylist()
    assert steps == list(range(1, 7))
    assert [k.rsplit("/", 1)[-1] for k in s3_server.keys("train-run/models/s3run/rank-state/")] == [
        "step-0000000006-rank-0000.pt"]  # earlier rank states are removed once a newer checkpoint commits
