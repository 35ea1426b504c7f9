"""Pre-training on several CPU ranks under torchrun (gloo): disjoint clips, identical weights on every rank at
every checkpoint, and elastic resume (2 ranks -> 1 and 1 -> 2) that neither replays nor skips a clip."""

from __future__ import annotations

import json
import os
import shutil
import socket
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_train import demo_data  # noqa: F401 - the module-scoped demo collection

pytestmark = pytest.mark.slow
TOP = Path(__file__).resolve().parents[2]
CLIPS, GLOBAL_BATCH = 26, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(data: str, out: Path, ranks: int, run: str, epochs: int, max_steps: int | None = None,
           resume: bool = False) -> list[dict]:
    """Run the worker on `ranks` processes (torchrun when > 1); returns each rank's record."""
    out.mkdir(parents=True, exist_ok=True)
    args = [str(TOP / "tests/training/ddp_worker.py"), data, str(out), run, str(epochs),
            "-" if max_steps is None else str(max_steps)] + (["resume"] if resume else [])
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())] if ranks > 1 else []
    env = {**os.environ, "PYTHONPATH": str(TOP), "OMP_NUM_THREADS": "1"}
    # its own process group: on a timeout the ranks torchrun started are killed too (they outlived a CI run)
    proc = subprocess.Popen([sys.executable, *launcher, *args], cwd=TOP, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(ranks)]


def _clips_by_global_batch(records: list[dict]) -> dict[tuple[int, int], list[int]]:
    """(epoch, batch number) -> the clips all ranks trained on in that global batch."""
    out: dict[tuple[int, int], list[int]] = {}
    for record in records:
        for epoch, number, *clips in record["seen"]:
            out.setdefault((epoch, number), []).extend(clips)
    return out


def test_two_ranks_see_disjoint_clips_and_keep_identical_weights(demo_data: str, tmp_path: Path):  # noqa: F811
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    ranks = _train(data, tmp_path / "out", 2, "ddp", epochs=2)
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 2 * (CLIPS // GLOBAL_BATCH)
    for epoch in range(2):  # within each epoch the two ranks' clips are disjoint
        mine = [set(c for e, _, *clips in r["seen"] if e == epoch for c in clips) for r in ranks]
        assert not mine[0] & mine[1] and len(mine[0]) == len(mine[1]) == (CLIPS // GLOBAL_BATCH) * 2
    assert ranks[0]["digests"] == ranks[1]["digests"] and len(ranks[0]["digests"]) == 2
    assert len(list((Path(data) / "models/ddp/rank-state").iterdir())) == 2  # one Mixup memory per rank


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_elastic_resume_neither_replays_nor_skips(demo_data: str, tmp_path: Path, before: int,  # noqa: F811
                                                  after: int):
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    first = _train(data, tmp_path / "first", before, "elastic", epochs=1, max_steps=2)  # stop mid-epoch
    second = _train(data, tmp_path / "second", after, "elastic", epochs=1, resume=True)
    got = {**_clips_by_global_batch(first), **_clips_by_global_batch(second)}
    assert set(_clips_by_global_batch(first)).isdisjoint(_clips_by_global_batch(second))  # no batch twice
    order = np.random.default_rng([42, 0]).permutation(CLIPS)  # the sampler's epoch-0 order (seed 42)
    expected = {(0, k): sorted(order[k * GLOBAL_BATCH:(k + 1) * GLOBAL_BATCH].tolist())
                for k in range(CLIPS // GLOBAL_BATCH)}
    assert {key: sorted(clips) for key, clips in got.items()} == expected  # every global batch, exactly once
