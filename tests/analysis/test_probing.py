"""Probe tasks over the store: the splits as streamed parts (labels, the limited task, movies as groups,
unknown labels refused), and `python -m analysis probe` under a hard memory cap on a table larger than the
cap (issue 9: probes stream batches from Parquet however large the table; AVA is millions of windows).

The cap is RLIMIT_DATA (private writable memory: the heap, numpy/torch/Arrow buffers), set in the probe's
own process after its imports, so a probe that materialised the embeddings fails with MemoryError (tested).
Allocator settings for that process are in ALLOCATOR (why: beside it). The store is written through the
store's own writers (items with the AVA adapter in their lineage, embeddings in shard-sized parts), so the
real CLI path runs: two tasks (full and limited), streamed splits, predictions, the movie bootstrap and the
summary tables. Measured: the probe's private memory rose about 265 MB above its imports on this table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from analysis.probing import task_data
from analysis.tasks import tasks_of
from featurestore import tables
from featurestore.tables import ITEMS_SCHEMA, Root

WIDTH = 512  # a v1 d=512 width
PARTS = 24
ROWS_PER_PART = 12_500  # one shard's windows
ROWS = PARTS * ROWS_PER_PART  # 300,000 windows x 512 float32 = 614 MB of vectors
MOVIES = 30
CAP_MB = 320  # above the probe's imports, about half the vectors alone (measured: it needs ~265)
BUFFER_MB = 16
MODEL = "capped-model"
# Under the cap Arrow allocates from the C heap, and glibc serves blocks >= 1 MiB from their own mappings:
# jemalloc reserves address space it never touches, and glibc's sliding mmap threshold keeps freed part
# buffers in its heap; the limit would count both, although neither grows with the table
ALLOCATOR = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_MMAP_THRESHOLD_": str(2**20)}

# Runs the CLI in this process after its imports, with the data limit set from what the imports used.
_CAPPED = textwrap.dedent("""
    import json, re, resource, runpy, sys
    import numpy, pyarrow, pyarrow.parquet, torch, sklearn.metrics  # what the probe imports, before the cap
    import analysis.__main__, analysis.probing
    torch.ones(1024, 1024) @ torch.ones(1024, 1024)  # start torch's threads (their stacks are data) first
    def data_bytes():
        return int(re.search(r"VmData:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    cap = data_bytes() + int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    sys.argv = ["analysis", *sys.argv[2:]]
    try:
        runpy.run_module("analysis", run_name="__main__")
    except SystemExit as stop:
        if stop.code:
            raise
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    print(json.dumps({"cap": cap, "data": data_bytes(), "peak_rss": peak}))
""")


def _store(data: Path, rows_per_part: int = ROWS_PER_PART, parts: int = PARTS, width: int = WIDTH,
           unknown_valid_label: bool = False) -> None:
    """AVA-like windows: speech moves the vectors along one direction, so the probe has something to learn;
    movie m holds rows [m * ROWS / MOVIES, (m + 1) * ROWS / MOVIES): 20 train (the first 8 limited), 5 valid,
    5 test."""
    root = Root(data)
    rng = np.random.default_rng(0)
    rows_all = rows_per_part * parts
    movie = np.arange(rows_all) * MOVIES // rows_all
    split = np.where(movie < 20, "train", np.where(movie < 25, "valid", "test"))
    speech = rng.random(ROWS) < 0.4
    speech = rng.random(rows_all) < 0.4
    keys = np.array([f"ava__m{m:03d}__{i:09d}" for i, m in enumerate(movie)])
    labels = np.where(speech, "speech", "no_speech").astype(object)
    if unknown_valid_label:
        labels[np.flatnonzero(split == "valid")[0]] = "music"
    n = rows_all
    items = pa.table({
        "dataset": ["ava"] * n, "key": keys, "clip": [k.rsplit("__", 1)[0] for k in keys], "split": split,
        "label": labels, "group": [f"m{m:03d}" for m in movie], "start_ms": (np.arange(n) % 900) * 1000,
        "duration_ms": [1000] * n, "pitch": pa.nulls(n, pa.int16()), "gender": pa.nulls(n, pa.string()),
        "limited_train": movie < 8}, schema=ITEMS_SCHEMA)
    tables.write(root, "items", {"dataset": "ava"}, items, ITEMS_SCHEMA,
                 tables.lineage(dataset="ava", corpus="ava_speech"))
    schema, part = tables.embeddings_schema(width), {"model": MODEL, "dataset": "ava"}
    direction = rng.standard_normal(width).astype(np.float32)
    entries = []
    for p in range(parts):
        rows = slice(p * rows_per_part, (p + 1) * rows_per_part)
        vectors = rng.standard_normal((rows_per_part, width), dtype=np.float32)
        vectors += 0.15 * speech[rows, None] * direction
        chunk = pa.table({
            "dataset": ["ava"] * rows_per_part, "key": keys[rows], "split": split[rows],
            "label": items["label"].slice(rows.start, rows_per_part), "model": [MODEL] * rows_per_part,
            "model_sha": ["0" * 16] * rows_per_part,
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), width)}, schema=schema)
        entries.append(tables.write_part(root, "embeddings", part, "g0", f"{p:05d}", chunk, schema))
    tables.commit(root, "embeddings", part, entries, tables.lineage(model=MODEL, model_sha="0" * 16), schema)


@pytest.mark.slow
def test_probe_cli_streams_a_table_larger_than_its_memory_cap(tmp_path):
    _store(tmp_path)
    table_bytes = ROWS * WIDTH * 4
    assert table_bytes > 1.8 * CAP_MB * 2**20  # materialising the vectors alone would break the cap
    out = subprocess.run(
        [sys.executable, "-c", _CAPPED, str(CAP_MB), "probe", "--data", str(tmp_path), "--models", MODEL,
         "--datasets", "ava", "--seeds", "1", "--resamples", "200", "--device", "cpu", "--buffer-mb", str(BUFFER_MB)],
        capture_output=True, text=True, timeout=900, env=os.environ | ALLOCATOR)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["data"] <= report["cap"]
    root = Root(tmp_path)
    probes = tables.read(root, "probes", ["task", "metric", "test_score"], model=MODEL).to_pylist()
    assert sorted(p["task"] for p in probes) == ["ava", "ava_limited"]
    assert all(p["metric"] == "ap" and p["test_score"] > 0.6 for p in probes)  # chance is 0.4
    test_rows = int((np.arange(ROWS) * MOVIES // ROWS >= 25).sum())  # the last 5 movies
    assert tables.read(root, "predictions", ["key"], model=MODEL, task="ava").num_rows == test_rows


def test_the_cap_fails_a_probe_that_materialises_the_table(tmp_path):
    """The cap is real: allocating more than it allows after the same imports raises MemoryError."""
    script = _CAPPED.replace('runpy.run_module("analysis", run_name="__main__")',
                             'numpy.ones(int(sys.argv[-1]) * 2**20 // 8)')
    out = subprocess.run([sys.executable, "-c", script, "64", "x", str(128)], capture_output=True, text=True,
                         timeout=300, env=os.environ | ALLOCATOR)
    assert out.returncode != 0 and "MemoryError" in out.stderr


def test_task_data_is_the_items_split_by_split(tmp_path):
    _store(tmp_path, rows_per_part=300, parts=4, width=8)  # 1,200 windows, 40 a movie
    root = Root(tmp_path)
    items = tables.read(root, "items", ["key", "split", "label", "group", "limited_train"]).to_pandas()
    full, limited = (task_data(root, MODEL, task, buffer_mb=1) for task in tasks_of(root, "ava"))
    assert full.classes == limited.classes == ["no_speech", "speech"]  # speech is the positive (1)
    for split in ("train", "valid", "test"):
        y = np.concatenate([b[1] for b in getattr(full, split)(64, None)])
        want = items[items.split == split]
        assert list(y) == list((want.label == "speech").astype(int))
    y = np.concatenate([b[1] for b in limited.train(64, None)])
    assert list(y) == list((items[items.limited_train & (items.split == "train")].label == "speech").astype(int))
    assert len(y) == 8 * 40 and full.train.n == 20 * 40
    test = items[items.split == "test"]
    assert full.test_keys == list(test.key) and full.test_groups == list(test.group)
    assert full.test_labels == list(test.label) and full.train.buffer_rows == 2**20 // 32


def test_a_held_out_label_train_never_saw_is_refused(tmp_path):
    _store(tmp_path, rows_per_part=300, parts=4, width=8, unknown_valid_label=True)
    root = Root(tmp_path)
    data = task_data(root, MODEL, tasks_of(root, "ava")[0])
    with pytest.raises(ValueError, match=r"ava: valid labels \['music'\] never occur in train"):
        list(data.valid(64, None))
