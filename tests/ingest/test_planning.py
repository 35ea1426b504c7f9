"""Planning is columnar: keys computed over columns equal `clip_key`; `--plan-only` freezes the plan and
writes nothing else, and a later run writes exactly that plan."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


def _listed(sources, cfg):
    from ingest.listing import list_sources
    from ingest.probe import probe_listing
    from shards.executor import InlineExecutor

    listing = list_sources(sources, cfg, "pretrain", InlineExecutor())
    probes = probe_listing(InlineExecutor(), listing, cfg.probe_batch, 1)
    return listing, probes, probes.column("reason").is_null().to_numpy(zero_copy_only=False)


def test_the_plan_does_not_depend_on_the_step_size_and_consumes_the_listing(tmp_path, mixed_sources, monkeypatch):
    """Cutting, keys, digests and shard filling run in steps of CHUNK clips: steps of 2 clips (a recording of
    12 clips spans six) give the very plan one step gives, tails included."""
    from ingest import plan as planning
    from tests.conftest import small_config

    cfg = small_config(tmp_path / "d", clip_seconds=2.0, tail="pad", shard_seconds=7.0)
    listing, probes, healthy = _listed(mixed_sources, cfg)
    whole, tails = planning.build_plan(listing, probes, healthy, cfg)
    assert listing.table.num_columns == 0  # consumed: the plan holds what it needs
    monkeypatch.setattr(planning, "CHUNK", 2)
    monkeypatch.setattr(planning, "HASH_SLICE", 3)
    listing, probes, healthy = _listed(mixed_sources, cfg)
    stepped, stepped_tails = planning.build_plan(listing, probes, healthy, cfg)
    assert stepped.equals(whole) and stepped_tails == tails == {"librispeech": 0, "noise": 0}
    assert whole.num_rows == 3 + 12 + 6 + 2 and len(set(whole.column("shard").to_pylist())) > 3
    noise = [r for r in whole.to_pylist() if r["corpus"] == "noise" and r["source"] == "n0.wav"]
    assert sorted(r["start"] for r in noise) == [2.0 * i for i in range(12)]
    assert {(r["seconds"], r["stored_seconds"]) for r in noise if r["start"] == 22.0} == {(1.5, 2.0)}


def test_only_clips_whose_digests_repeat_are_compared_by_key(tmp_path, monkeypatch):
    """With every digest equal (a worst case for the 64-bit interleaving hash), distinct keys plan fine
    (in listing order: the sort is stable) and a repeated key is still refused by name."""
    from ingest import plan as planning
    from ingest.config import Source
    from ingest.synth import nonspeech, write_audio
    from tests.conftest import small_config

    monkeypatch.setattr(planning, "_interleaving", lambda keys, seed: np.zeros(len(keys), dtype=">u8"))
    for name in ("a.wav", "b.wav", "c/d.wav"):
        write_audio(tmp_path / "c" / name, nonspeech(1.0, 16000), 16000)
    cfg = small_config(tmp_path / "d")
    sources = [Source("c", "folder", str(tmp_path / "c"), domain="nonspeech")]
    plan, _ = planning.build_plan(*_listed(sources, cfg), cfg)
    assert plan.column("key").to_pylist() == ["c__a__000000000", "c__b__000000000", "c__c-d__000000000"]
    write_audio(tmp_path / "c" / "c-d.wav", nonspeech(1.0, 16000), 16000)
    with pytest.raises(ValueError, match=r"two clips map to key 'c__c-d__000000000': 'c-d.wav' and 'c/d.wav'"):
        planning.build_plan(*_listed(sources, cfg), cfg)


def test_the_streamed_plan_has_the_bytes_write_table_writes(tmp_path, mixed_sources):
    from ingest.collection import PLAN_META, Outcomes, _write_plan
    from ingest.plan import build_plan
    from shards.catalog import write_table
    from tests.conftest import small_config

    cfg = small_config(tmp_path / "d")
    plan, _ = build_plan(*_listed(mixed_sources, cfg), cfg)
    outcomes = Outcomes({"noise": 1}, {}, {"noise": 2})
    write_table(Root(tmp_path / "a"), "plan.parquet", plan, {PLAN_META: outcomes.to_dict()})
    _write_plan(Root(tmp_path / "b"), "plan.parquet", plan, outcomes)
    assert (tmp_path / "a" / "plan.parquet").read_bytes() == (tmp_path / "b" / "plan.parquet").read_bytes()
    assert not [p for p in (tmp_path / "b").iterdir() if p.name != "plan.parquet"]  # no temporary left
