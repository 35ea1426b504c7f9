"""Where jobs run: a local process pool, in-process, or a Dask cluster, all as `concurrent.futures.Executor`.

The engine only ever calls `submit` and waits on futures, so the same plan runs on a laptop, a Dask
scheduler (`SCHEDULER=tcp://host:8786`) or a SLURM/PBS/... cluster started from dask-jobqueue's own
configuration (`JOBQUEUE=slurm`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, as_completed, wait
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

JOBQUEUE_CLUSTERS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                     "htcondor": "HTCondorCluster", "oar": "OARCluster", "moab": "MoabCluster"}


class InlineExecutor(Executor):
    """Runs each job when submitted, in this process (workers=0): for profiling and one-process benches."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # delivered through the future, as a pool would
            future.set_exception(err)
        return future


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


@contextmanager
def make_executor(workers: int | None = None, scheduler: str | None = None, jobqueue: str | None = None,
                  initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> Iterator[Executor]:
    """An executor for `workers` local processes, a Dask `scheduler` address, or a jobqueue cluster.
    `initializer(*initargs)` runs once in each local worker process as it starts (e.g. to take a GPU)."""
    if scheduler and jobqueue:
        raise ValueError("give either scheduler= (an existing Dask cluster) or jobqueue= (start one), not both")
    if scheduler or jobqueue:
        from distributed import Client

        cluster = _jobqueue_cluster(jobqueue, workers) if jobqueue else None
        client = Client(cluster if cluster is not None else scheduler)
        log.info("running on Dask cluster %s", client.scheduler.address)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers={workers}: expected 0 (in-process) or more")
    if workers == 0:
        yield InlineExecutor()
        return
    # spawn: workers start clean (no inherited threads/locks) and with the environment as it is *now*
    # (forkserver would keep the environment of its first use, e.g. AWS_* set later in a notebook).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:
        yield pool


def bounded_map(executor: Executor, fn: Callable[[Any], Any], jobs: Iterable, in_flight: int) -> Iterator:
    """Results of fn(job) as they complete, with at most `in_flight` jobs submitted at once, so pending
    payloads never pile up in memory (a 1,200-shard plan would otherwise be queued whole)."""
    pending: set = set()
    for job in jobs:
        if len(pending) >= in_flight:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
        pending.add(executor.submit(fn, job))
    for future in as_completed(pending):
        yield future.result()


def _jobqueue_cluster(kind: str, workers: int | None):
    import dask_jobqueue

    if kind not in JOBQUEUE_CLUSTERS:
        raise ValueError(f"jobqueue={kind!r}: expected one of {sorted(JOBQUEUE_CLUSTERS)}")
    cluster = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[kind])()  # settings from ~/.config/dask/jobqueue.yaml
    cluster.scale(jobs=workers or 1)
    return cluster
