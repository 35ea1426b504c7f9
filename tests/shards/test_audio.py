"""Decoding details the engine relies on: exact seeks, exact lengths, and I/O errors that are not bad audio."""

import numpy as np
import pytest
import soundfile as sf

from ingest.synth import speechlike, write_audio
from ingest.write import clip_pcm
from shards import audio


def test_mp3_clip_after_a_seek_equals_the_same_span_of_a_full_decode(tmp_path):
    path = write_audio(tmp_path / "talk.mp3", speechlike(25.0, 16000, seed=3), 16000)
    full, _ = sf.read(path, dtype="float32")
    part, rate = audio.read(path, 10.0, 10.0)
    assert rate == 16000 and part.shape == (160000, 1)
    assert np.abs(part[:, 0] - full[160000:320000]).max() < 1e-6  # no decoder run-up garbage


def test_m4a_probe_length_is_the_decoded_length(tmp_path):
    import av

    path = tmp_path / "utt.m4a"
    wave = speechlike(2.0, 16000, seed=1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(wave[None, :], format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info = audio.probe(path)
    data, rate = audio.read(path)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, len(data)) and rate == 16000
    row = {"source_path": str(path), "start": 0.0, "seconds": info.seconds, "stored_seconds": info.seconds}
    assert len(clip_pcm(row)) == round(info.seconds * 16000)  # not quarantined as "truncated"


def test_an_io_error_is_not_quarantined_as_bad_audio(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "ok.wav", speechlike(1.0, 16000), 16000)

    def failing_read(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    with pytest.raises(OSError, match="Input/output"):
        audio.read(path)  # propagates: the shard job fails and a re-run retries, nothing is lost


def test_pcm16_round_trip_is_exact():
    pcm = (np.arange(-32768, 32768, 7)).astype(np.int16)
    assert np.array_equal(audio.to_pcm16(pcm.astype(np.float32) / 32768), pcm)


def test_headers_below_the_lowest_real_rate_or_promising_too_much_audio_are_bad(tmp_path):
    with pytest.raises(audio.BadAudio, match=r"^absurd sample rate 3999 Hz \(expected 4000\.\.384000\)$"):
        audio._check_header(audio.AudioInfo(3999, 1, 16000), size=32044)
    with pytest.raises(audio.BadAudio, match=r"^implausible length: header declares 600\.0 s of audio in 1024 "
                                             r"bytes \(more than 256 s per KiB\)$"):
        audio._check_header(audio.AudioInfo(16000, 1, 16000 * 600), size=1024)
    # the most compact real audio, ten minutes of digital silence as FLAC at 4 kHz, passes
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(4000 * 600, dtype=np.int16), 4000, subtype="PCM_16")
    info = audio.probe(path)
    assert (info.samplerate, info.frames) == (4000, 4000 * 600)


@pytest.mark.parametrize("subtype, fmt", [("PCM_16", "WAV"), ("PCM_24", "WAV"), ("PCM_U8", "WAV"), ("FLOAT", "WAV"),
                                          ("DOUBLE", "WAV"), ("PCM_16", "FLAC"), ("PCM_24", "FLAC"),
                                          ("ULAW", "WAV"), ("PCM_16", "OGG")])
def test_the_fast_header_probe_reports_what_libsndfile_reports(tmp_path, subtype, fmt):
    if fmt == "OGG":
        subtype = "VORBIS"
    for rate, channels in ((8000, 1), (44100, 2), (48000, 6)):
        path = tmp_path / f"{rate}-{channels}.{fmt.lower()}"
        sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, (rate // 3 + 7, channels)), rate,
                 subtype=subtype, format=fmt)
        info = sf.info(path)
        assert audio.probe(path) == audio.AudioInfo(info.samplerate, info.channels, info.frames)
    plain = subtype != "ULAW" and fmt != "OGG"  # the others go through libsndfile itself
    head = path.read_bytes()[:audio.HEADER_BYTES]
    assert (audio._plain_header(head, path.stat().st_size) is not None) == plain
