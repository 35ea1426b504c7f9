import pytest

from ingest.corpora import get
from ingest.synth import nonspeech, write_audio

HEADER = "path,label,split,speaker_age,note"


def _dataset(root, rows):
    for path in ("clips/b.wav", "clips/a.flac", "other/c.wav"):
        write_audio(root / path, nonspeech(0.3, 16000, seed=len(path)), 16000)
    manifest = root / "labels.csv"
    manifest.write_text("\n".join([HEADER, *rows]) + "\n")
    return manifest


ROWS = ["clips/b.wav,dog,train,31,loud", "clips/a.flac,cat,valid,,", "other/c.wav,dog,test,40,\"a, b\""]


def test_csv_rows_become_records_relative_to_the_csv_folder(tmp_path):
    manifest = _dataset(tmp_path, ROWS)
    corpus = get("csv")
    records = list(corpus.recordings(manifest))
    assert [(r.path, r.label, r.split) for r in records] == [
        ("clips/a.flac", "cat", "valid"), ("clips/b.wav", "dog", "train"), ("other/c.wav", "dog", "test")]
    assert records[1].extra == {"speaker_age": "31", "note": "loud"}
    assert records[2].extra["note"] == "a, b"
    assert {r.domain for r in records} == {"mixed"}
    assert corpus.base_dir(manifest) == tmp_path
    assert all((corpus.base_dir(manifest) / r.path).is_file() for r in records)
    assert corpus.kind == "custom" and corpus.root_is_file


def test_domain_option(tmp_path):
    manifest = _dataset(tmp_path, ROWS)
    assert {r.domain for r in get("csv").recordings(manifest, {"domain": "speech"})} == {"speech"}
    assert {r.domain for r in get("csv").recordings(manifest, {"domain": None})} == {"mixed"}
    with pytest.raises(ValueError, match="domain='music'"):
        list(get("csv").recordings(manifest, {"domain": "music"}))


def test_a_bad_split_names_its_row(tmp_path):
    manifest = _dataset(tmp_path, [ROWS[0], "clips/a.flac,cat,validation,,"])
    with pytest.raises(ValueError, match=r"row 2 \(line 3\): split='validation'"):
        list(get("csv").recordings(manifest))


def test_a_missing_file_names_its_row(tmp_path):
    manifest = _dataset(tmp_path, [ROWS[0], ROWS[1], "clips/gone.wav,dog,train,,"])
    with pytest.raises(FileNotFoundError, match=r"row 3 \(line 4\).*gone.wav"):
        list(get("csv").recordings(manifest))


@pytest.mark.parametrize("path", ["/abs/a.wav", "../a.wav", "clips\\a.flac", ""])
def test_paths_must_stay_inside_the_csv_folder(tmp_path, path):
    manifest = _dataset(tmp_path, [f"{path},cat,train,,"])
    with pytest.raises(ValueError, match="row 1"):
        list(get("csv").recordings(manifest))


def test_header_and_duplicates_are_checked(tmp_path):
    manifest = _dataset(tmp_path, [])
    manifest.write_text("file,label,split\nclips/a.flac,cat,train\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['path'\]"):
        list(get("csv").recordings(manifest))
    manifest.write_text("path,label,split\nclips/a.flac,cat,train\nclips/a.flac,dog,test\n")
    with pytest.raises(ValueError, match="listed twice"):
        list(get("csv").recordings(manifest))


def test_the_root_must_be_the_csv_file(tmp_path):
    _dataset(tmp_path, ROWS)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        list(get("csv").recordings(tmp_path))
