"""Items from the transfer catalogs (file datasets: one per file; AVA: one per window of the windows table),
their seeded RSA/t-SNE subsets, and their audio read back from the shards exactly as ingest wrote it."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from featurestore import items as items_mod
from featurestore import tables
from featurestore.audio import ShardAudio
from shards.storage import Root
from tests.featurestore.conftest import AVA_MOVIES, AVA_WINDOWS, ESC50_SECONDS, copy_of
from tests.fixtures import esc50, nsynth


@pytest.fixture(scope="module")
def stored(transfer_set, tmp_path_factory) -> Path:
    """A copy of the transfer set with `items` and `rsa_items` of every dataset committed."""
    data = copy_of(transfer_set.data, tmp_path_factory.mktemp("items") / "data")
    for dataset in items_mod.datasets(Root(data)):
        items_mod.write_items(Root(data), dataset)
    return data


def catalog(data: Path, dataset: str) -> list[dict]:
    """The collection's catalog read straight from its Parquet parts (not through shards.catalog)."""
    return pq.read_table(data / "catalog" / dataset / "clips").to_pylist()


def items_of(data: Path, dataset: str) -> list[dict]:
    return tables.read(Root(data), "items", dataset=dataset).to_pylist()


def test_the_transfer_datasets_are_listed(stored):
    assert items_mod.datasets(Root(stored)) == ["ava", "esc50", "nsynth", "vctk"]
    with pytest.raises(ValueError) as err:
        items_mod.check_dataset(Root(stored), "esc-50")
    assert "no transfer dataset 'esc-50' (present: ['ava', 'esc50', 'nsynth', 'vctk']" in str(err.value)
    assert "\n" not in str(err.value)


def test_esc50_items_carry_the_catalogs_split_and_label_and_the_whole_file(stored):
    rows = items_of(stored, "esc50")
    by_source = {r["source"]: r for r in catalog(stored, "esc50")}
    expected = {}
    for (name, fold, _target, category, *_), seconds in zip(esc50.ROWS, ESC50_SECONDS):
        key = by_source[f"audio/{name}"]["key"]
        split = "valid" if fold == 4 else "test" if fold == 5 else "train"
        expected[key] = {"dataset": "esc50", "key": key, "clip": key, "split": split, "label": category,
                         "group": None, "start_ms": 0, "duration_ms": round(seconds * 1000), "pitch": None,
                         "gender": None, "limited_train": None}
    assert {r["key"]: r for r in rows} == expected
    assert len(rows) == len(esc50.ROWS)  # the unlisted file is not an item
    lineage = tables.manifest(Root(stored), "items", {"dataset": "esc50"})["lineage"]
    complete = (stored / "shards" / "esc50" / "_COMPLETE.json").read_bytes()  # what embed checks before reuse
    assert lineage["corpus"] == "esc50"
    assert lineage["collection_fingerprint"] == hashlib.sha256(complete).hexdigest()[:16]


def test_items_record_the_adapter_not_the_source_name(stored):
    """The probe protocol follows the adapter (AVA: AP, 10 epochs, a limited task) whatever the user named it;
    the catalog's corpus column holds the source name, which for a user's `ava` is not `ava_speech`."""
    lineage = tables.manifest(Root(stored), "items", {"dataset": "ava"})["lineage"]
    assert lineage["corpus"] == "ava_speech"


def test_ava_items_are_the_windows_keyed_by_clip_and_start(stored):
    rows = items_of(stored, "ava")
    windows = pq.read_table(stored / "catalog" / "ava" / "windows.parquet").to_pylist()
    assert len(rows) == len(windows) == AVA_MOVIES * sum(AVA_WINDOWS.values())
    for item, w in zip(rows, windows):
        start_ms = round(w["offset"] * 1000)
        assert item == {"dataset": "ava", "key": f"{w['key']}@{start_ms:09d}", "clip": w["key"], "split": w["split"],
                        "label": w["label"], "group": w["video_id"], "start_ms": start_ms, "duration_ms": 1000,
                        "pitch": None, "gender": None, "limited_train": w["limited_train"]}
    assert len({r["key"] for r in rows}) == len(rows)
    movies = {}
    for r in rows:
        movies.setdefault(r["group"], set()).add((r["split"], r["limited_train"]))
    assert sorted(next(iter(v)) for v in movies.values()) == [("test", False), ("train", False), ("train", True),
                                                               ("valid", False)]
    first = sorted(movies)[0]  # movies sorted by id: the first train movie is the "limited" one
    assert movies[first] == {("train", True)}
    one = [r for r in rows if r["group"] == first]
    assert [r["start_ms"] for r in one if r["label"] == "background"] == list(range(0, 1510, 10))
    assert [r["start_ms"] for r in one if r["label"] == "speech"] == list(range(2500, 3010, 10))
    assert one[0]["key"].endswith("@000000000") and one[-1]["key"].endswith("@000003000")


def test_nsynth_pitch_and_vctk_gender_are_filled(stored):
    pitch = {r["key"]: r["pitch"] for r in items_of(stored, "nsynth")}
    notes = {f"nsynth-{split}/audio/{row[0]}_{row[1]}_{row[2]:03d}-{row[3]:03d}-{row[4]:03d}.wav": row[3]
             for split, rows in nsynth.NOTES.items() for row in rows}
    by_source = {r["source"]: r["key"] for r in catalog(stored, "nsynth")}
    assert pitch == {by_source[s]: p for s, p in notes.items()} and len(pitch) == 6
    assert all(r["gender"] is None for r in items_of(stored, "nsynth"))
    vctk_items = items_of(stored, "vctk")
    speakers = {r["key"]: r["speaker"] for r in catalog(stored, "vctk")}
    assert {(r["group"], r["gender"]) for r in vctk_items} == {("p225", "F"), ("p226", "M"), ("p248", "F"),
                                                                 ("p280", "F")}
    assert all(r["group"] == speakers[r["key"]] == r["label"] and r["pitch"] is None for r in vctk_items)
    splits = {r["key"].split("-")[-1].split("__")[0]: r["split"] for r in vctk_items}
    assert splits == {"p225_001_mic1": "valid", "p225_025_mic1": "valid", "p225_026_mic1": "test",
                      "p225_050_mic1": "test", "p225_051_mic1": "train", "p225_366_mic1": "train",
                      "p226_002_mic1": "valid", "p226_060_mic1": "train", "p248_003_mic1": "valid",
                      "p248_120_mic1": "train", "p280_030_mic1": "test"}


def test_rsa_items_of_the_stored_datasets_are_their_validation_items(stored):
    for dataset in ("ava", "esc50", "nsynth", "vctk"):
        valid = sorted(r["key"] for r in items_of(stored, dataset) if r["split"] == "valid")
        chosen = tables.read(Root(stored), "rsa_items", dataset=dataset).to_pylist()
        for purpose in ("rsa", "tsne"):  # fewer than the limits: every validation item, in key order
            assert [r["key"] for r in chosen if r["purpose"] == purpose] == valid
        assert all(r["dataset"] == dataset for r in chosen)
    lineage = tables.manifest(Root(stored), "rsa_items", {"dataset": "ava"})["lineage"]
    assert (lineage["seed"], lineage["rsa"], lineage["tsne"]) == (0, 1000, 2000)


def synthetic_items(valid: int, train: int) -> pa.Table:
    n = valid + train
    rng = np.random.default_rng(3)
    keys = [f"clip{i:05d}" for i in rng.permutation(n)]  # not in key order
    return pa.table({"dataset": ["big"] * n, "key": keys, "clip": keys,
                     "split": ["valid"] * valid + ["train"] * train, "label": ["x"] * n, "group": [None] * n,
                     "start_ms": [0] * n, "duration_ms": [1000] * n, "pitch": pa.nulls(n, pa.int16()),
                     "gender": [None] * n, "limited_train": pa.nulls(n, pa.bool_())}, schema=tables.ITEMS_SCHEMA)


def test_subsets_are_capped_seeded_deterministic_and_valid_only():
    items = synthetic_items(2_500, 700)
    valid = set(items.filter(pa.compute.equal(items["split"], "valid"))["key"].to_pylist())
    sub = items_mod.subsets(items)
    rsa = [r["key"] for r in sub.to_pylist() if r["purpose"] == "rsa"]
    tsne = [r["key"] for r in sub.to_pylist() if r["purpose"] == "tsne"]
    assert (len(rsa), len(tsne)) == (1_000, 2_000) and sub.num_rows == 3_000
    assert set(rsa) <= valid and set(tsne) <= valid
    assert len(set(rsa)) == 1_000 and len(set(tsne)) == 2_000 and rsa == sorted(rsa) and tsne == sorted(tsne)
    assert not set(rsa) <= set(tsne)  # drawn independently, not nested
    assert items_mod.subsets(items).equals(sub)  # same items, same subsets
    shuffled = items.take(np.random.default_rng(9).permutation(items.num_rows))
    assert items_mod.subsets(shuffled).equals(sub)  # row order does not matter: drawn from the sorted keys
    other = items_mod.subsets(items, seed=1).to_pylist()
    assert [r["key"] for r in other if r["purpose"] == "rsa"] != rsa
    assert items_mod.subsets(items.slice(0, 0)).num_rows == 0


def decoded_members(data: Path, dataset: str) -> dict[str, np.ndarray]:
    """Every clip of a collection decoded from its tar members with soundfile (not through shards/)."""
    out = {}
    for row in catalog(data, dataset):
        with tarfile.open(data / "shards" / dataset / f"{row['shard']}.tar") as tar:
            member = tar.extractfile(f"{row['key']}.{row['codec']}").read()
        wave, rate = sf.read(io.BytesIO(member), dtype="float32")
        assert rate == 16_000 and len(wave) == row["frames"]
        out[row["key"]] = wave
    return out


@pytest.mark.parametrize("dataset, codec", [("esc50", "wav"), ("nsynth", "wav"), ("vctk", "flac"), ("ava", "wav")])
def test_shard_audio_returns_exactly_the_samples_ingest_wrote(stored, dataset, codec):
    members = decoded_members(stored, dataset)
    rows = catalog(stored, dataset)
    assert {r["codec"] for r in rows} == {codec}
    items = tables.read(Root(stored), "items", dataset=dataset)
    shard_of = {r["key"]: r["shard"] for r in rows}
    for shard in sorted(set(shard_of.values())):
        audio = ShardAudio(Root(stored), dataset, shard)
        assert sorted(audio.keys) == sorted(k for k, s in shard_of.items() if s == shard)
        for key in audio.keys:
            got = audio.span(key)
            assert got.dtype == np.float32 and np.array_equal(got, members[key])
        mine = items.filter(pa.compute.is_in(items["clip"], pa.array(audio.keys)))
        for item, wave in zip(mine.to_pylist(), audio.waves(mine)):
            start = item["start_ms"] * 16
            expected = members[item["clip"]][start: start + item["duration_ms"] * 16]
            assert len(wave) == item["duration_ms"] * 16 and np.array_equal(wave, expected)


@pytest.mark.parametrize("dataset", ["ava", "vctk"])  # a WAV shard (ranged reads) and a FLAC one (decoded whole)
def test_spans_past_the_end_are_zero_padded(stored, dataset):
    members = decoded_members(stored, dataset)
    key = sorted(members)[0]
    full = members[key]
    audio = ShardAudio(Root(stored), dataset, {r["key"]: r["shard"] for r in catalog(stored, dataset)}[key])
    end_ms = len(full) // 16
    tail = audio.span(key, end_ms - 100, 300)
    assert len(tail) == 4800 and np.array_equal(tail[:1600], full[-1600:]) and not tail[1600:].any()
    assert np.array_equal(audio.span(key, 100, 200), full[1600:4800])
    assert np.array_equal(audio.span(key, end_ms - 50), full[-800:])  # no duration: to the end
    assert not audio.span(key, end_ms, 250).any() and len(audio.span(key, end_ms, 250)) == 4000

