"""Planning is columnar: keys computed over columns equal `clip_key`; `--plan-only` freezes the plan and
writes nothing else, and a later run writes exactly that plan."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.__main__ import main as ingest_main
from ingest.keys import clip_key, clip_keys
from shards.catalog import read_catalog
from shards.storage import Root

PATHS = ["a/b.wav", "x.y/z", "a/.hidden", "x.", "my recording.wav", "é" * 60 + ".wav", "x/" * 80 + "y.wav",
         "a.b.c.d", "noext", "train-clean-100/19/198/19-198-0001.flac", "ES2002a/audio/ES2002a.Array1-01.wav"]
STARTS = [0.0, 12.34, 0.0005, 0.0015, 10.0, 0.0, 3.0, 1e6, 2.5, 0.0, 12.34]


def test_column_keys_equal_clip_key_for_every_kind_of_path():
    got = clip_keys(pa.array(["c"] * len(PATHS)), pa.array(PATHS), np.array(STARTS)).to_pylist()
    assert got == [clip_key("c", p, s) for p, s in zip(PATHS, STARTS)]
    assert got[-1] == "c__ES2002a-audio-ES2002a-Array1-01__000012340"
    assert got[4] == "c__my-recording-1f674b2f__000010000" and len(got[6]) == 95


def test_plan_only_freezes_the_plan_and_a_later_run_writes_it(tmp_path, mixed_sources, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[corpora.librispeech]\nroot = "{mixed_sources[0].root}"\n[corpora.noise]\nadapter = "folder"\n'
                    f'root = "{mixed_sources[1].root}"\ndomain = "nonspeech"\n')
    args = ["shards", "--config", str(toml), "--data", str(tmp_path / "d"), "--workers", "0", "--shard-seconds", "25"]
    assert ingest_main([*args, "--plan-only"]) == 0
    out = capsys.readouterr().err.replace("\n", " ")
    assert "plan of pretrain: 9 clips" in out and "in 2 shards would be written" in out
    written = sorted(str(p.relative_to(tmp_path / "d")) for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert written == ["catalog/pretrain/duplicates.parquet", "catalog/pretrain/manifest.json",
                       "catalog/pretrain/plan.parquet", "catalog/pretrain/quarantine/probe.parquet"]
    plan = pq.read_table(tmp_path / "d" / "catalog" / "pretrain" / "plan.parquet")
    assert ingest_main(args) == 0
    catalog = read_catalog(Root(tmp_path / "d"), "pretrain")
    assert catalog.column("key").to_pylist() == plan.column("key").to_pylist()
    assert catalog.column("shard").to_pylist() == plan.column("shard").to_pylist()
