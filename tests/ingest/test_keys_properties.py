"""Properties of clip keys (`ingest.keys.clip_key`), the names every shard member and catalog row carry.

Contract (README "Keys"): `<corpus>__<recording>__<offset_ms:09d>`, recording = path under the corpus root
without its extension with `/` and `.` mapped to `-`; any other unsafe character also becomes `-` and an
8-hex hash of the path is appended; keys longer than MAX_KEY (95) keep a prefix plus an 8-hex hash. So a
key is ASCII-safe, dot-free and short enough for a USTAR name, the same on every machine, and two distinct
recordings get distinct keys except where the documented mapping merges them, which ingest refuses.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ingest.__main__ import main as ingest_main
from ingest.keys import clip_key, recording_id
from shards.layout import check_name
from shards.shardfile import MAX_KEY, check_key

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
# Corpus names as check_name accepts them, of the lengths real corpora have (the longest id is 15 chars),
# and check_name refuses a trailing '_' (it would make the corpus part of a key ambiguous; tested below).
corpus_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z").filter(
    lambda n: "__" not in n and not n.endswith("_"))
# Any relative path: unicode, spaces, dots, deep folders, with or without an extension.
segments = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=30)
paths = st.builds(lambda parts, ext: "/".join(parts) + ext, st.lists(segments, min_size=1, max_size=8),
                  st.sampled_from(["", ".wav", ".flac", ".mp3", ".tar.gz"]))
# Paths in the safe alphabet, where the documented mapping alone decides the recording id.
safe_segments = st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")
safe_paths = st.builds(lambda parts, seps, ext: "".join(p + s for p, s in zip(parts, seps))[:-1] + ext,
                       st.lists(safe_segments, min_size=1, max_size=10),
                       st.lists(st.sampled_from("/."), min_size=10, max_size=10).map(lambda s: [*s[:-1], "."]),
                       st.sampled_from([".wav", ".flac"]))
offsets_ms = st.integers(min_value=0, max_value=999_999_999)  # up to ~278 h into a recording


def _documented_id(path: str) -> str:
    """README: the path without its extension, `/` and `.` mapped to `-` (for safe-alphabet paths)."""
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    return re.sub(r"[/.]", "-", stem)


@given(corpus_names, paths, offsets_ms)
@example("c", "x/" * 80 + "y.wav", 0)  # long: prefix + hash
@example("ami", "ES2002a/audio/ES2002a.Array1-01.wav", 12_340)
@example("c", "ä ö/ü.wav", 999_999_999)
def test_keys_are_ascii_safe_dot_free_short_and_parse_back(corpus, path, offset_ms):
    key = clip_key(corpus, path, offset_ms / 1000)
    assert SAFE.match(key) and "." not in key and len(key) <= MAX_KEY
    assert check_key(key) == key  # the shard writer accepts it as a member name
    # The corpus and offset read back from the key: corpus names cannot hold '__', the offset is last.
    assert key.split("__")[0] == corpus
    assert key.rsplit("__", 1)[1] == f"{offset_ms:09d}"
    assert clip_key(corpus, path, offset_ms / 1000) == key  # stable within a process


def test_keys_are_the_same_on_every_machine():
    """Hashes are sha1 of the path (not Python's salted `hash`): these exact keys hold anywhere."""
    assert clip_key("librispeech", "train-clean-100/19/198/19-198-0001.flac", 0.0) == \
        "librispeech__train-clean-100-19-198-19-198-0001__000000000"
    assert clip_key("c", "a b.wav", 10.0) == f"c__a-b-{hashlib.sha1(b'a b').hexdigest()[:8]}__000010000"
    long = clip_key("folder", "x/" * 80 + "y.wav", 0.0)
    rec = "x-" * 80 + "y"
    assert long == f"folder__{rec[:95 - len('folder____000000000') - 9]}-{hashlib.sha1(rec.encode()).hexdigest()[:8]}" \
        "__000000000"
    assert len(long) == MAX_KEY


@given(corpus_names, safe_paths, safe_paths, offsets_ms)
@example("c", "a/b.wav", "a.b.flac", 0)
@example("c", "a/b.wav", "a-b.wav", 0)
def test_safe_paths_collide_only_where_the_documented_mapping_merges_them(corpus, p1, p2, offset_ms):
    k1, k2 = clip_key(corpus, p1, offset_ms / 1000), clip_key(corpus, p2, offset_ms / 1000)
    assert recording_id(p1) == _documented_id(p1)
    assert (k1 == k2) == (_documented_id(p1) == _documented_id(p2))


@given(corpus_names, paths, paths, offsets_ms)
@example("c", "a b.wav", "a-b.wav", 0)  # the space is mapped, but the hash keeps them apart
@example("c", "x/" * 80 + "y.wav", "x/" * 80 + "z.wav", 0)  # same 95-char prefix, different hash
def test_distinct_recording_ids_give_distinct_keys(corpus, p1, p2, offset_ms):
    assume(recording_id(p1) != recording_id(p2))
    assert clip_key(corpus, p1, offset_ms / 1000) != clip_key(corpus, p2, offset_ms / 1000)


@given(st.text(st.sampled_from("ab/"), min_size=60, max_size=200),
       st.text(st.sampled_from("ab"), min_size=1, max_size=3))
def test_long_recordings_sharing_a_prefix_keep_distinct_keys(prefix, tail):
    """Truncation keeps the first characters: only the hash of the full id tells these apart."""
    p1, p2 = f"{prefix}{tail}.wav", f"{prefix}{tail}x.wav"
    k1, k2 = clip_key("c", p1, 0.0), clip_key("c", p2, 0.0)
    assert len(k1) <= MAX_KEY and len(k2) <= MAX_KEY and k1 != k2


@given(corpus_names, paths, offsets_ms, offsets_ms)
def test_offsets_a_millisecond_apart_give_distinct_keys(corpus, path, a, b):
    assume(a != b)
    assert clip_key(corpus, path, a / 1000) != clip_key(corpus, path, b / 1000)


def test_a_corpus_name_check_name_accepts_gives_a_valid_key_or_is_refused():
    corpus = "c" * 80
    try:
        check_name(corpus)
        key = clip_key(corpus, "x/" * 60 + "y.wav", 1.0)
    except ValueError:
        return  # refused at the boundary, in one line: fine
    assert len(key) <= MAX_KEY, len(key)


def test_keys_of_different_corpora_never_collide():
    with pytest.raises(ValueError, match="no trailing '_'"):
        check_name("a_")  # the one name that would make corpus a_ + x.wav and corpus a + _x.wav share a key
    assert check_name("a") == "a"


_colliding = st.tuples(st.lists(st.from_regex(r"\A[a-z0-9]{1,6}\Z"), min_size=2, max_size=4),
                       st.lists(st.sampled_from("/.-"), min_size=3, max_size=3),
                       st.lists(st.sampled_from("/.-"), min_size=3, max_size=3))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_colliding)
def test_ingest_refuses_two_recordings_that_map_to_one_key(capsys, parts_and_seps):
    """Where the mapping does merge two files, ingest stops with one line naming the key and both files."""
    from ingest.synth import nonspeech, write_audio

    parts, seps1, seps2 = parts_and_seps
    p1 = "".join(p + s for p, s in zip(parts, seps1))[:-1] + ".wav"
    p2 = "".join(p + s for p, s in zip(parts, seps2))[:-1] + ".wav"
    assume(p1 != p2)
    key = clip_key("c", p1, 0.0)
    assert key == clip_key("c", p2, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for p in (p1, p2):
            write_audio(Path(tmp) / "c" / p, nonspeech(0.2, 16000), 16000)
        capsys.readouterr()
        rc = ingest_main(["shards", "--corpus", f"c=folder:{tmp}/c", "--domain", "nonspeech",
                          "--data", f"{tmp}/d", "--workers", "0"])
        err = capsys.readouterr().err.replace("\n", "")
        assert rc == 1 and f"map to key {key!r}" in err, err
        assert p1 in err and p2 in err
        assert not list(Path(tmp, "d").rglob("*.tar"))
