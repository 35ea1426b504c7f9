"""Two CPU ranks under torchrun (gloo): disjoint clips, and identical online/target weights at every checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_train import demo_data  # noqa: F401 - the module-scoped demo collection

TOP = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_see_disjoint_clips_and_keep_identical_weights(demo_data: str, tmp_path: Path):  # noqa: F811
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    env = {**os.environ, "PYTHONPATH": str(TOP), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(TOP / "tests/training/ddp_worker.py"), data, str(tmp_path)]
    result = subprocess.run(cmd, cwd=TOP, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    seen = [[i for batch in r["seen"] for i in batch] for r in ranks]
    assert ranks[0]["batches"] == ranks[1]["batches"] == 2 * (26 // 2 // 2)  # 2 epochs of 13 clips per rank, batch 2
    for epoch in range(2):  # within each epoch the two ranks' clips are disjoint
        half = len(seen[0]) // 2
        assert not set(seen[0][epoch * half:(epoch + 1) * half]) & set(seen[1][epoch * half:(epoch + 1) * half])
    assert ranks[0]["digests"] == ranks[1]["digests"] and len(ranks[0]["digests"]) == 2
    assert (Path(data) / "models/ddp/rank-state").is_dir()
    assert len(list((Path(data) / "models/ddp/rank-state").iterdir())) == 2  # one Mixup memory per rank
