import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import soxr

from ingest.__main__ import main as ingest_main
from ingest.engine import FingerprintMismatch, build_collection
from ingest.keys import clip_key
from shards.catalog import read_catalog
from shards.storage import Root
from shards.verify import verify
from tests.conftest import small_config


def _files(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file() and p.suffix in (".tar", ".idx") or p.parent.name == "clips"}


def test_collection_round_trip_verifies_and_catalog_matches(tmp_path, mixed_sources):
    summary = build_collection(mixed_sources, small_config(tmp_path / "d"))
    assert summary.corpora["librispeech"]["clips"] == 3
    # 23.5 s -> 10 + 10 + 3.5 (kept tail), 12 s -> 10 + 2, 4 s -> 4 (shorter than a clip: kept whole)
    assert summary.corpora["noise"]["clips"] == 6
    report = verify(str(tmp_path / "d"))
    assert report.ok, report.problems
    assert report.clips == 9
    catalog = read_catalog(Root(tmp_path / "d"), "pretrain").to_pylist()
    keys = [r["key"] for r in catalog]
    assert len(set(keys)) == len(keys)
    noise = sorted((r["source"], r["start"], r["seconds"]) for r in catalog if r["corpus"] == "noise")
    assert noise == [("n0.wav", 0.0, 10.0), ("n0.wav", 10.0, 10.0), ("n0.wav", 20.0, 3.5),
                     ("n1.wav", 0.0, 10.0), ("n1.wav", 10.0, 2.0), ("n2.wav", 0.0, 4.0)]
    assert "noise__n0__000020000" in keys and "librispeech__train-clean-100-19-198-19-198-0001__000000000" in keys
    assert {r["sample_rate"] for r in catalog} == {16000}


def test_clip_audio_equals_soxr_reference_within_one_lsb(tmp_path, mixed_sources):
    build_collection(mixed_sources, small_config(tmp_path / "d", codec="wav"))
    root = Root(tmp_path / "d")
    row = next(r for r in read_catalog(root, "pretrain").to_pylist() if r["key"] == "noise__n0__000010000")
    import tarfile
    with tarfile.open(tmp_path / "d" / "shards" / "pretrain" / f"{row['shard']}.tar") as tar:
        pcm, rate = sf.read(tar.extractfile(f"{row['key']}.wav"), dtype="int16")
    src, sr = sf.read(Path(mixed_sources[1].root) / "n0.wav", dtype="float32", start=441000, stop=882000)
    reference = soxr.resample(src.mean(axis=1), sr, 16000, "HQ")
    reference = np.clip(np.rint(reference * 32768), -32768, 32767)
    assert rate == 16000 and len(pcm) == 160000
    assert np.max(np.abs(pcm.astype(np.int32) - reference[:160000].astype(np.int32))) <= 1


def test_same_input_gives_byte_identical_shards(tmp_path, mixed_sources):
    build_collection(mixed_sources, small_config(tmp_path / "a"))
    build_collection(mixed_sources, small_config(tmp_path / "b", workers=2))
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 6  # 2 shards x (tar, idx, catalog part)
    assert all(a[k] == b[k] for k in a)


def test_rerun_skips_committed_shards(tmp_path, mixed_sources):
    first = build_collection(mixed_sources, small_config(tmp_path / "d"))
    again = build_collection(mixed_sources, small_config(tmp_path / "d"))
    assert first.shards == again.shards == again.shards_skipped > 1
    assert again.corpora == first.corpora


def test_changed_settings_or_sources_refuse_with_one_line(tmp_path, mixed_sources, capsys):
    build_collection(mixed_sources, small_config(tmp_path / "d"))
    with pytest.raises(FingerprintMismatch, match="new collection"):
        build_collection(mixed_sources, small_config(tmp_path / "d", codec="flac"))
    with pytest.raises(FingerprintMismatch):
        build_collection(mixed_sources[:1], small_config(tmp_path / "d"))
    build_collection(mixed_sources[:1], small_config(tmp_path / "d", collection="more"))  # a new collection is fine
    rc = ingest_main(["shards", "--corpus", f"noise=folder:{mixed_sources[1].root}", "--domain", "nonspeech",
                      "--data", str(tmp_path / "d"), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "fingerprint" in err and "Traceback" not in err


def test_table_one_cutting_and_tail_policies(tmp_path, mixed_sources):
    from dataclasses import replace

    whole = [mixed_sources[0], replace(mixed_sources[1], cut=False)]
    build_collection(whole, small_config(tmp_path / "pad", tail="pad"))  # kept whole: one clip per file
    rows = read_catalog(Root(tmp_path / "pad"), "pretrain").to_pylist()
    assert sorted(r["seconds"] for r in rows if r["corpus"] == "noise") == [4.0, 12.0, 23.5]
    build_collection(whole, small_config(tmp_path / "uniform", clip_seconds=10.0))  # whole beats uniform cutting
    rows = read_catalog(Root(tmp_path / "uniform"), "pretrain").to_pylist()
    assert sorted(r["seconds"] for r in rows if r["corpus"] == "noise") == [4.0, 12.0, 23.5]
    build_collection(mixed_sources, small_config(tmp_path / "p2", tail="pad"))
    rows = {r["key"]: r for r in read_catalog(Root(tmp_path / "p2"), "pretrain").to_pylist()}
    tail = rows["noise__n0__000020000"]
    assert tail["seconds"] == 3.5 and tail["frames"] == 160000  # valid length kept, audio padded
    build_collection(mixed_sources, small_config(tmp_path / "dr", tail="drop"))
    keys = {r["key"] for r in read_catalog(Root(tmp_path / "dr"), "pretrain").to_pylist()}
    assert "noise__n0__000020000" not in keys and "noise__n1__000010000" not in keys
    assert "noise__n2__000000000" in keys  # a file shorter than one clip is kept whole


def test_keys_are_stable_and_collisions_are_refused(tmp_path, capsys):
    assert clip_key("librispeech", "train-clean-100/19/198/19-198-0001.flac", 0.0) == \
        "librispeech__train-clean-100-19-198-19-198-0001__000000000"
    assert clip_key("ami", "ES2002a/audio/ES2002a.Array1-01.wav", 12.34) == \
        "ami__ES2002a-audio-ES2002a-Array1-01__000012340"
    long = clip_key("folder", "x/" * 80 + "y.wav", 0.0)
    assert len(long) == 95 and long == clip_key("folder", "x/" * 80 + "y.wav", 0.0)
    from ingest.synth import nonspeech, write_audio
    write_audio(tmp_path / "c" / "a-b.wav", nonspeech(1.0, 16000), 16000)
    write_audio(tmp_path / "c" / "a" / "b.wav", nonspeech(1.0, 16000), 16000)
    rc = ingest_main(["shards", "--corpus", f"c=folder:{tmp_path / 'c'}", "--domain", "nonspeech",
                      "--data", str(tmp_path / "d"), "--workers", "0"])
    assert rc == 1 and "two clips map to key 'c__a-b__000000000'" in capsys.readouterr().err.replace("\n", "")


def test_catalog_parts_carry_shard_checksums(tmp_path, mixed_sources, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSENTINEL123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-sentinel-456")
    build_collection(mixed_sources, small_config(tmp_path / "d"))
    index = pq.read_table(tmp_path / "d" / "shards" / "pretrain" / "index.parquet").to_pylist()
    done = json.loads((tmp_path / "d" / "shards" / "pretrain" / "_COMPLETE.json").read_text())
    assert sum(r["clips"] for r in index) == 9 and done["shards"] == len(index)
    import hashlib
    for r in index:
        assert hashlib.sha256((tmp_path / "d" / r["path"]).read_bytes()).hexdigest() == r["sha256"]
    assert not list((tmp_path / "d").rglob(".tmp-*"))
    written = b"".join(p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert b"secret-sentinel-456" not in written and b"AKIDSENTINEL123" not in written


def test_16k_mono_pcm16_sources_pass_through_bit_exactly(tmp_path, mixed_sources):
    import tarfile

    build_collection(mixed_sources, small_config(tmp_path / "d"))
    rows = [r for r in read_catalog(Root(tmp_path / "d"), "pretrain").to_pylist() if r["corpus"] == "librispeech"]
    for row in rows:
        with tarfile.open(tmp_path / "d" / "shards" / "pretrain" / f"{row['shard']}.tar") as tar:
            stored, _ = sf.read(tar.extractfile(f"{row['key']}.{row['codec']}"), dtype="int16")
        source, _ = sf.read(Path(mixed_sources[0].root) / "LibriSpeech" / row["source"], dtype="int16")
        assert np.array_equal(stored, source)


def test_corpora_are_interleaved_within_every_shard(tmp_path):
    from ingest.config import Source
    from ingest.synth import speechlike, write_audio

    for i in range(40):
        write_audio(tmp_path / "a" / f"a{i:02d}.wav", speechlike(0.5, 16000, seed=i), 16000)
        write_audio(tmp_path / "b" / f"b{i:02d}.wav", speechlike(0.5, 16000, seed=100 + i), 16000)
    sources = [Source("a", "folder", str(tmp_path / "a"), domain="speech"),
               Source("b", "folder", str(tmp_path / "b"), domain="nonspeech")]
    build_collection(sources, small_config(tmp_path / "d", shard_seconds=10.0))
    catalog = read_catalog(Root(tmp_path / "d"), "pretrain").to_pylist()
    shards = sorted({r["shard"] for r in catalog})
    assert len(shards) == 4
    for shard in shards:
        corpora = [r["corpus"] for r in catalog if r["shard"] == shard]
        changes = sum(x != y for x, y in zip(corpora, corpora[1:]))
        assert {"a", "b"} <= set(corpora) and changes >= len(corpora) // 4, (shard, corpora)


def test_spaces_and_non_ascii_names_give_safe_unique_keys_that_dali_indexes_read(tmp_path):
    from ingest.config import Source
    from ingest.synth import speechlike, write_audio
    from shards.shardfile import parse_index

    for name in ("my recording.wav", "my-recording.wav", "é" * 60 + ".wav", "ü" * 60 + ".wav"):
        write_audio(tmp_path / "c" / name, speechlike(1.0, 16000), 16000)
    build_collection([Source("mine", "folder", str(tmp_path / "c"), domain="speech")], small_config(tmp_path / "d"))
    keys = read_catalog(Root(tmp_path / "d"), "pretrain").column("key").to_pylist()
    assert len(set(keys)) == 4 and "mine__my-recording__000000000" in keys
    assert all(k.isascii() and " " not in k and len(k) <= 95 for k in keys)
    idx = (tmp_path / "d" / "shards" / "pretrain" / "shard-000000.idx").read_text()
    assert {e.key for e in parse_index(idx)} == set(keys)
    assert verify(str(tmp_path / "d")).ok


def test_bad_names_are_refused_before_anything_is_written(tmp_path, capsys, mixed_sources):
    for spec in ("my c=folder:/x", "my.c=folder:/x", "a__b=folder:/x"):
        rc = ingest_main(["shards", "--corpus", spec, "--domain", "speech", "--data", str(tmp_path / "d")])
        assert rc == 1 and "letters, digits, '_' and '-'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_same_config_from_another_folder_resumes_the_same_collection(tmp_path, mixed_sources, monkeypatch):
    noise = Path(mixed_sources[1].root)
    args = ["shards", "--domain", "nonspeech", "--data", str(tmp_path / "d"), "--workers", "0"]
    monkeypatch.chdir(noise.parent)
    assert ingest_main([*args, "--corpus", "noise=folder:noise"]) == 0
    monkeypatch.chdir(tmp_path)
    assert ingest_main([*args, "--corpus", f"noise=folder:{noise.relative_to(tmp_path)}"]) == 0


def test_a_one_domain_ingest_writes_the_diets_it_can(tmp_path, mixed_sources, capsys):
    rc = ingest_main(["shards", "--corpus", f"noise=folder:{mixed_sources[1].root}", "--domain", "nonspeech",
                      "--data", str(tmp_path / "d"), "--workers", "0"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "d" / "diets").glob("*.json")) == ["all.json", "nonspeech.json"]


def test_a_corpus_moved_between_runs_is_read_from_its_new_place(tmp_path, mixed_sources):
    import shutil

    from ingest.config import Source

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    reference = _files(data)
    for part in (data / "catalog" / "pretrain" / "clips").glob("*.parquet"):
        part.unlink()  # as if killed before any shard committed
    moved = tmp_path / "moved-noise"
    shutil.move(mixed_sources[1].root, moved)
    again = build_collection([mixed_sources[0], Source("noise", "folder", str(moved), domain="nonspeech")],
                             small_config(data))
    assert again.quarantined == 0 and _files(data) == reference


def test_the_completion_record_does_not_depend_on_which_shard_finishes_first(tmp_path, monkeypatch):
    """Per-corpus seconds are float sums: added as jobs finished, two runs of one plan wrote 113.88997732426304
    and ...303 s. Summed in shard order, a run whose jobs finish in reverse writes the same bytes (here 45.1
    s, where the reverse sum is 45.099999999999994)."""
    import ingest.engine as engine
    from ingest.config import Source
    from ingest.synth import nonspeech, write_audio

    for i, seconds in enumerate((13.7, 8.1, 23.3)):
        write_audio(tmp_path / "src" / f"r{i}.wav", nonspeech(seconds, 22050, seed=i), 22050)
    sources = [Source("many", "folder", str(tmp_path / "src"), domain="speech")]
    cfg = {"clip_seconds": 3.0, "tail": "pad", "shard_seconds": 9.0}
    build_collection(sources, small_config(tmp_path / "forward", **cfg))
    real_map = engine.bounded_map
    monkeypatch.setattr(engine, "bounded_map", lambda *a: iter(list(real_map(*a))[::-1]))
    build_collection(sources, small_config(tmp_path / "reverse", **cfg))
    done = [(tmp_path / d / "shards" / "pretrain" / "_COMPLETE.json").read_bytes() for d in ("forward", "reverse")]
    assert done[0] == done[1]
    rows = read_catalog(Root(tmp_path / "forward"), "pretrain").to_pylist()
    per_shard = [sum(r["seconds"] for r in rows if r["shard"] == s) for s in sorted({r["shard"] for r in rows})]
    assert sum(per_shard) != sum(per_shard[::-1])  # these durations make the order show
    assert json.loads(done[0])["corpora"]["many"]["seconds"] == sum(per_shard)
