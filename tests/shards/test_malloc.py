"""shards.malloc: freed memory stays in the process, so a loop that reallocates the same large buffers stops
page-faulting them in again (the measured reason for it is in the module docstring)."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOOP = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from shards.malloc import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()  # applied, and idempotent
def step():  # a training step's temporaries: eight 8 MiB buffers alive together, then all freed
    alive = [np.ones(2 << 20, np.float32) for _ in range(8)]
    del alive
for _ in range(3):  # warm-up: the heap grows to its working size
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default, retained = _faults("default"), _faults("retain")
    # default glibc: what is freed at the heap's top beyond its trim threshold (twice the largest block
    # freed so far) goes back to the kernel, and every step faults it in again (measured: ~4,100 pages a step)
    assert default > 20 * 2_000
    assert retained < 1_000
