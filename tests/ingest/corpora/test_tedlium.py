import pytest
import soundfile as sf

from ingest.corpora import get
from tests.fixtures import tedlium as fixture


def test_tedlium_lists_training_talks_and_mtedx_asr_pairs_only(tmp_path):
    fixture.build(tmp_path)
    records = list(get("tedlium").recordings(tmp_path))
    assert [r.path for r in records] == [
        "TEDLIUM_release-3/data/sph/AaronHuey_2010X.sph",
        "TEDLIUM_release-3/data/sph/ElizabethGilbert_2009.sph",
        "mtedx/es-es/data/train/wav/0u7tTptBo9I.flac",
        "mtedx/es-es/data/train/wav/1k2gRy8EVNs.flac",
    ]
    # The filler row's "inter_segment_gap" is not taken as the speaker.
    assert [r.speaker for r in records] == ["AaronHuey_2010X", "ElizabethGilbert_2009", "0u7tTptBo9I",
                                            "1k2gRy8EVNs"]
    assert [r.subset for r in records] == ["tedlium3", "tedlium3", "mtedx-es", "mtedx-es"]
    assert [r.extra["language"] for r in records] == ["en", "en", "es", "es"]
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert get("tedlium").cut is True


def test_fixture_audio_is_nist_sphere_16k(tmp_path):
    fixture.build(tmp_path)
    info = sf.info(str(tmp_path / "TEDLIUM_release-3/data/sph/AaronHuey_2010X.sph"))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("NIST", "PCM_16", 16000, 1)


def test_mtedx_pairs_option_selects_translation_pairs_explicitly(tmp_path):
    fixture.build(tmp_path)
    records = list(get("tedlium").recordings(tmp_path, {"mtedx_pairs": ["es-en"]}))
    assert [r.path for r in records][2:] == ["mtedx/es-en/data/train/wav/0u7tTptBo9I.flac"]
    assert records[-1].extra == {"language": "es", "pair": "es-en"}


def test_tedlium_without_mtedx_is_fine(tmp_path):
    fixture.build(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "mtedx")
    assert len(list(get("tedlium").recordings(tmp_path))) == 2


@pytest.mark.parametrize("bad", ["es-es", ["spanish"], [3], 3, [["es-es"]]])
def test_bad_mtedx_pairs_are_value_errors(tmp_path, bad):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="mtedx_pairs"):
        list(get("tedlium").recordings(tmp_path, {"mtedx_pairs": bad}))


def test_named_pair_that_is_missing_is_one_clear_error(tmp_path):
    fixture.build(tmp_path)
    with pytest.raises(FileNotFoundError, match="tedlium: expected .*fr-fr"):
        list(get("tedlium").recordings(tmp_path, {"mtedx_pairs": ["fr-fr"]}))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="tedlium: expected .*TEDLIUM_release-3"):
        list(get("tedlium").recordings(tmp_path))


def test_root_must_be_the_parent_of_tedlium_release_3(tmp_path):
    fixture.build(tmp_path)
    with pytest.raises(FileNotFoundError, match="tedlium: expected"):
        list(get("tedlium").recordings(tmp_path / "TEDLIUM_release-3"))


def test_talk_without_stm_keeps_going_with_a_warning(tmp_path, caplog):
    import logging

    fixture.build(tmp_path)
    (tmp_path / "TEDLIUM_release-3/data/stm/ElizabethGilbert_2009.stm").unlink()
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.tedlium"):
        records = list(get("tedlium").recordings(tmp_path))
    assert [r.speaker for r in records][:2] == ["AaronHuey_2010X", None]
    assert "1 talk(s)" in caplog.text
