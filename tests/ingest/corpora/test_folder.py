import pytest

from ingest.corpora import get
from ingest.synth import nonspeech, speechlike, write_audio


def _tree(root):
    write_audio(root / "b.wav", speechlike(0.3, 16000, seed=0), 16000)
    write_audio(root / "a" / "z.flac", speechlike(0.3, 22050, seed=1), 22050)
    write_audio(root / "a" / "deep" / "x.ogg", nonspeech(0.3, 16000, seed=2), 16000)
    write_audio(root / "a" / "._z.flac", speechlike(0.1, 16000, seed=3), 16000)  # AppleDouble debris
    write_audio(root / "__MACOSX" / "a" / "y.wav", speechlike(0.1, 16000, seed=4), 16000)
    (root / "notes.txt").write_text("not audio\n")
    (root / "a" / "cover.jpg").write_bytes(b"\xff\xd8")
    return root


def test_folder_lists_every_audio_file_sorted(tmp_path):
    _tree(tmp_path)
    records = list(get("folder").recordings(tmp_path, {"domain": "speech"}))
    assert [r.path for r in records] == ["a/deep/x.ogg", "a/z.flac", "b.wav"]
    assert {(r.domain, r.split, r.label, r.corpus) for r in records} == {("speech", "train", None, "folder")}
    corpus = get("folder")
    assert corpus.kind == "custom" and corpus.cut and corpus.domain is None  # cut unless kept whole


def test_domain_is_required_and_checked(tmp_path):
    _tree(tmp_path)
    with pytest.raises(ValueError, match="domain=None"):
        list(get("folder").recordings(tmp_path))
    with pytest.raises(ValueError, match="domain='mixed'"):
        list(get("folder").recordings(tmp_path, {"domain": "mixed"}))
    assert {r.domain for r in get("folder").recordings(tmp_path, {"domain": "nonspeech"})} == {"nonspeech"}


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x\n")
    with pytest.raises(FileNotFoundError, match="folder: no audio files"):
        list(get("folder").recordings(tmp_path, {"domain": "speech"}))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        list(get("folder").recordings(tmp_path / "absent", {"domain": "speech"}))
