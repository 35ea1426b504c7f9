"""A collection has one writer at a time (a lease, local and on S3); a run deletes only its own kind of
temporaries; a committed catalog part is trusted only when it was made from the frozen plan."""

import json
import os
import socket
import subprocess
import sys

import pytest

from ingest.__main__ import main as ingest_main
from ingest.engine import build_collection
from shards import lease
from shards.storage import Root
from tests.conftest import small_config
from tests.s3server import s3_server  # noqa: F401


def _plant(data, **fields):
    """A lease as another run would have left it."""
    body = {"run": "other", "host": socket.gethostname(), "pid": os.getpid(), "pid_start": None,
            "started": "2026-11-29T10:00:00Z", **fields}
    path = data / "catalog" / "pretrain" / "_LEASE.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


def test_a_second_run_is_refused_with_one_line_naming_the_first(tmp_path, mixed_sources, capsys):
    data = tmp_path / "d"
    _plant(data, host="gpu-node-7", pid=4242)  # a live run elsewhere
    with pytest.raises(lease.LeaseHeld, match="being written by another run \\(host gpu-node-7, pid 4242, "
                                              "started 2026-11-29T10:00:00Z\\)"):
        build_collection(mixed_sources, small_config(data))
    rc = ingest_main(["shards", "--corpus", f"noise=folder:{mixed_sources[1].root}", "--domain", "nonspeech",
                      "--data", str(data), "--workers", "0"])
    err = capsys.readouterr().err.replace("\n", "")
    assert rc == 1 and "pid 4242" in err and f"python -m ingest unlock --data {data} --collection pretrain" in err
    assert not (data / "shards").exists()  # nothing written
    assert ingest_main(["unlock", "--data", str(data), "--collection", "pretrain"]) == 0
    assert "removed the lease of host gpu-node-7, pid 4242" in capsys.readouterr().err.replace("\n", "")
    summary = build_collection(mixed_sources, small_config(data))
    assert summary.corpora["noise"]["clips"] == 6
    assert not (data / "catalog" / "pretrain" / "_LEASE.json").exists()  # released at the end


def test_a_dead_runs_lease_on_this_host_is_taken_over(tmp_path, mixed_sources):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _plant(tmp_path / "d", pid=int(dead.stdout))
    assert build_collection(mixed_sources, small_config(tmp_path / "d")).corpora["noise"]["clips"] == 6
    _plant(tmp_path / "e")  # this live process
    with pytest.raises(lease.LeaseHeld):
        build_collection(mixed_sources, small_config(tmp_path / "e"))


def test_a_run_whose_lease_was_broken_does_not_complete_the_collection(tmp_path, mixed_sources, monkeypatch):
    data = tmp_path / "d"
    real_finish_check = lease.owns

    def broken_then_taken(root, collection, mine):
        _plant(data, run="intruder")
        return real_finish_check(root, collection, mine)

    monkeypatch.setattr(lease, "owns", broken_then_taken)
    with pytest.raises(lease.LeaseHeld, match="lease was broken while it ran"):
        build_collection(mixed_sources, small_config(data))
    assert not (data / "shards" / "pretrain" / "_COMPLETE.json").exists()
    assert json.loads((data / "catalog" / "pretrain" / "_LEASE.json").read_text())["run"] == "intruder"


def test_only_stale_shard_temporaries_are_removed(tmp_path, mixed_sources):
    shards = tmp_path / "d" / "shards" / "pretrain"
    shards.mkdir(parents=True)
    stale = shards / ".tmp-0123456789abcdef0123456789abcdef-shard-000000.tar"
    foreign = shards / ".tmp-0123456789abcdef0123456789abcdef-_VERIFIED.json"  # e.g. a verify in flight
    stale.write_bytes(b"half a tar")
    foreign.write_bytes(b"{}")
    build_collection(mixed_sources, small_config(tmp_path / "d"))
    assert not stale.exists() and foreign.read_bytes() == b"{}"


def _outputs(data):
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file() and p.suffix in (".tar", ".idx", ".parquet") and "quarantine" not in p.parts}


def test_a_committed_part_that_does_not_match_the_plan_is_rewritten(tmp_path, mixed_sources):
    data = tmp_path / "d"
    first = build_collection(mixed_sources, small_config(data))
    reference = _outputs(data)
    parts = data / "catalog" / "pretrain" / "clips"
    a, b = parts / "shard-000000.parquet", parts / "shard-000001.parquet"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)  # shard 0's part now describes shard 1's clips (as a concurrent run once left it)
    b.write_bytes(a_bytes)
    again = build_collection(mixed_sources, small_config(data))
    assert again.shards_skipped == 0 and again.corpora == first.corpora
    assert _outputs(data) == reference


@pytest.mark.slow
def test_the_lease_is_a_conditional_create_on_s3(s3_server):  # noqa: F811
    root = Root(s3_server.url("lease-test"))
    mine = lease.acquire(root, "pretrain")
    with pytest.raises(lease.LeaseHeld, match=f"pid {os.getpid()}"):  # same host, alive: refused
        lease.acquire(root, "pretrain")
    assert json.loads(s3_server.get("lease-test/catalog/pretrain/_LEASE.json"))["run"] == mine.run
    lease.release(root, "pretrain", mine)
    assert s3_server.keys("lease-test/catalog/pretrain/") == []
    again = lease.acquire(root, "pretrain")
    assert lease.unlock(root.url, "pretrain") == again
    assert s3_server.keys("lease-test/catalog/pretrain/") == []


def test_two_ingests_finishing_together_write_the_diets_one_after_the_other(tmp_path, mixed_sources, monkeypatch):
    """Run 1 writes the diets having seen collection a only; collection b completes meanwhile and run 2
    writes its diets too. Run 2 waits for run 1's lease, so the diets left are run 2's, over a and b
    (unleased, run 2 finished first and run 1's diets, without b, were the ones left)."""
    import threading
    import time

    from ingest import engine
    from shards import diets

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data, collection="a"))
    inside, go, done = threading.Event(), threading.Event(), {}
    real_shards = diets.collection_shards

    def paused(root, collection):  # run 1 has chosen its collections: hold it there
        if threading.current_thread().name == "run1":
            inside.set()
            go.wait(30)
        return real_shards(root, collection)

    def run(name):
        done[name] = (engine.write_pretrain_diets(str(data)), time.monotonic())

    monkeypatch.setattr(diets, "collection_shards", paused)
    threads = [threading.Thread(target=run, args=(name,), name=name) for name in ("run1", "run2")]
    threads[0].start()
    assert inside.wait(30)
    build_collection(mixed_sources, small_config(data, collection="b"))  # b completes while run 1 writes
    threads[1].start()
    time.sleep(1.0)  # run 2 is waiting for the lease now
    assert "run2" not in done
    released = time.monotonic()
    go.set()
    for t in threads:
        t.join(60)
    assert done["run1"][0]["all"]["collections"] == ["a"] and done["run2"][1] >= released
    manifest = json.loads((data / "diets" / "all.json").read_text())
    assert sorted(manifest["collections"]) == ["a", "b"] and manifest["clips"] == 2 * 9
    assert diets.load_diet(str(data), "all").offset.shape == (18,)
    assert not (data / "diets" / "_LEASE").exists()


def test_a_live_runs_diets_lease_is_waited_for_then_refused_with_one_line(tmp_path, mixed_sources, capsys):
    from ingest.engine import write_pretrain_diets

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    (data / "diets").mkdir()
    (data / "diets" / "_LEASE").write_text(json.dumps({"run": "other", "host": "gpu-node-7", "pid": 4242,
                                                       "pid_start": None, "started": "2026-11-29T10:00:00Z"}))
    with pytest.raises(lease.LeaseHeld, match=r"the diets in .* are being written by another run \(host gpu-node-7, "
                                              r"pid 4242, started 2026-11-29T10:00:00Z\) \(waited 0.3 s\); .*"
                                              rf"python -m ingest unlock --data {data} --diets"):
        write_pretrain_diets(str(data), wait=0.3)
    assert not (data / "diets" / "all.json").exists()
    assert ingest_main(["unlock", "--data", str(data), "--diets"]) == 0
    assert "the diets: removed the lease of host gpu-node-7" in capsys.readouterr().err.replace("\n", "")
    assert write_pretrain_diets(str(data))["all"]["clips"] == 9 and not (data / "diets" / "_LEASE").exists()
    with pytest.raises(SystemExit):  # one or the other
        ingest_main(["unlock", "--data", str(data), "--diets", "--collection", "pretrain"])


def test_shards_diet_takes_the_same_diets_lease(tmp_path, mixed_sources, capsys):
    """`python -m shards diet` writes the diets as ingest does, so it waits for (and then refuses) a live run's
    lease with one line, and holds the lease itself while it writes (an ingest finishing meanwhile waits)."""
    from shards import diets
    from shards.__main__ import main as shards_main

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    (data / "diets").mkdir()
    planted = {"run": "other", "host": "gpu-node-7", "pid": 4242, "pid_start": None, "started": "2026-11-29T10:00:00Z"}
    (data / "diets" / "_LEASE").write_text(json.dumps(planted))
    assert shards_main(["diet", str(data), "--wait", "0.3"]) != 0
    err = capsys.readouterr().err.replace("\n", "")
    assert "the diets in" in err and "host gpu-node-7" in err and "(waited 0.3 s)" in err
    assert not (data / "diets" / "all.json").exists()

    (data / "diets" / "_LEASE").unlink()
    seen = []
    real = diets._write_diets

    def writing(*args):  # what the lease file says while the diets are being written
        seen.append(json.loads((data / "diets" / "_LEASE").read_text())["pid"])
        return real(*args)

    diets._write_diets = writing
    try:
        assert shards_main(["diet", str(data)]) == 0
    finally:
        diets._write_diets = real
    assert seen == [os.getpid()] and not (data / "diets" / "_LEASE").exists()
    assert json.loads((data / "diets" / "all.json").read_text())["clips"] == 9
