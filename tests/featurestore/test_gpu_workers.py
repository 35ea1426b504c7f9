"""One embed worker process per GPU (issue 8), as far as a machine without GPUs can check it: how many workers a
run gets, that each local worker takes a different GPU index through the executor's initializer, and that
`take_gpu` makes its index the current CUDA device. The GPU run itself is in `make gpu-check`."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from featurestore import embed as embed_mod
from featurestore.config import EmbedConfig
from shards.executor import make_executor

_TAKEN: list = []


def _record_index(queue, barrier) -> None:  # a CPU stand-in for take_gpu: the worker keeps the index it took
    _TAKEN.extend([queue.get(), barrier])


def _which(_: int) -> tuple[int, int]:
    _TAKEN[1].wait(timeout=120)  # two jobs meet here, so they run in two different processes
    return os.getpid(), _TAKEN[0]


@pytest.mark.parametrize("gpus, workers, scheduler, device, expected", [
    (4, 0, None, "cuda", 4),  # several GPUs: one process each
    (4, 2, None, "cuda", 4),  # --workers that disagrees is overridden (with a warning)
    (1, 0, None, "cuda", 0),  # one GPU: in this process
    (4, 3, None, "cpu", 3),  # CPU runs keep --workers
    (4, 0, "tcp://x:8786", "cuda", 0),  # a Dask cluster assigns its own workers' GPUs
])
def test_one_worker_per_gpu(monkeypatch, gpus, workers, scheduler, device, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    cfg = EmbedConfig(data="x", workers=workers, scheduler=scheduler)
    assert embed_mod.gpu_workers(cfg, device) == expected


def test_each_local_worker_takes_its_own_index():
    spawn = multiprocessing.get_context("spawn")
    queue, barrier = spawn.SimpleQueue(), spawn.Barrier(2)
    for index in range(2):
        queue.put(index)
    with make_executor(2, initializer=_record_index, initargs=(queue, barrier)) as pool:
        seen = dict(pool.map(_which, range(4)))
    assert sorted(seen.values()) == [0, 1] and len(seen) == 2  # two processes, two different indices


def test_take_gpu_sets_the_current_device(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    queue = multiprocessing.get_context("spawn").SimpleQueue()
    queue.put(3)
    embed_mod.take_gpu(queue)
    assert chosen == [3]
