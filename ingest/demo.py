"""The built-in demo: small, deterministic corpora in real corpora's layouts, so their adapters run.

- `LibriSpeech/train-clean-100/...` speech-like utterances (16 kHz FLAC + transcripts), not cut;
- `musan/{music,noise,speech}/...` long 16 kHz WAVs, cut into 10-s clips (tails kept), plus one
  truncated file that the engine must quarantine (the demo shows quarantine at work);
- `ESC-50-master/` a labelled 5-fold transfer set (44.1 kHz WAV, `meta/esc50.csv`) whose five classes differ
  in spectro-temporal pattern (`esc_sound`), so the demo's probes and RSA have something real to measure;
- `AVA-Speech/` 60 short "movies" (16 kHz WAV) with `ava_speech_labels_v1.csv`: 1.1 s of background then
  1.1 s of speech each, so the AVA path (1-s windows at a 10-ms hop, AP, movies as bootstrap units, the
  limited-train task) runs end to end. The adapter's split by sorted id: the last 10 movies test, the 10
  before them valid, 40 train, of which AVA-limited trains on the first 30.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ingest.synth import nonspeech, speechlike, write_audio

ESC_CLASSES = ("dog", "rain", "crying_baby", "clock_tick", "helicopter")

CONFIG = """\
# Demo corpora config, written by `python -m ingest demo`. Same format as ingest/corpora.toml.
[settings]
collection = "pretrain"
shard_seconds = 60.0  # tiny shards so the demo shows several

[corpora.librispeech]
root = "LibriSpeech"

[corpora.musan]
root = "musan"
"""


def _librispeech(top: Path) -> None:
    seed = 0
    for spk, chap in (("103", "1240"), ("1034", "121119"), ("1040", "133433")):
        folder = top / "train-clean-100" / spk / chap
        lines = []
        for utt in range(4):
            uid = f"{spk}-{chap}-{utt:04d}"
            write_audio(folder / f"{uid}.flac", speechlike(2.0 + (seed % 5), 16000, seed=seed), 16000)
            lines.append(f"{uid} DEMO UTTERANCE {seed}")
            seed += 1
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")


def _musan(top: Path) -> None:
    for i in range(2):
        write_audio(top / "music" / "fma" / f"music-fma-{i:04d}.wav", nonspeech(25.0, 16000, seed=100 + i), 16000)
    for i in range(3):
        write_audio(top / "noise" / "free-sound" / f"noise-free-sound-{i:04d}.wav",
                    nonspeech(12.0, 16000, seed=200 + i), 16000)
    write_audio(top / "speech" / "librivox" / "speech-librivox-0000.wav", speechlike(14.0, 16000, seed=300), 16000)
    bad = top / "noise" / "free-sound" / "noise-free-sound-0003.wav"
    full = write_audio(bad, nonspeech(12.0, 16000, seed=203), 16000).read_bytes()
    bad.write_bytes(full[: len(full) // 3])  # truncated download: header promises 12 s, 4 s present


def esc_sound(target: int, seconds: float, sr: int, seed: int):
    """A clip of demo class `target`: each class has its own spectro-temporal signature (a dog's barks are
    200-300 Hz harmonic bursts at ~2 Hz, rain is 3-6 kHz noise, a baby cries at 400-600 Hz with vibrato, a
    clock ticks at 4 Hz, a helicopter is low noise chopped at ~15 Hz), at a random level, so the probes have
    something to find and loudness alone cannot find it."""
    import numpy as np
    from scipy import signal

    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    if target == 0:  # dog
        f = rng.uniform(200, 300)
        bursts = np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * t) > 0.3
        out = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6)) * bursts
    elif target == 1:  # rain
        out = signal.lfilter(*signal.butter(4, [3000, 6000], "bandpass", fs=sr), noise)
    elif target == 2:  # crying baby
        f = rng.uniform(400, 600) * (1 + 0.03 * np.sin(2 * np.pi * 6 * t))
        out = sum(np.sin(2 * np.pi * np.cumsum(f) / sr * k) / k for k in range(1, 4))
    elif target == 3:  # clock tick
        out = np.zeros(n)
        for start in np.arange(rng.uniform(0, 0.25), seconds, 0.25):
            i = int(start * sr)
            out[i:i + 80] = noise[i:i + 80] * np.exp(-np.arange(len(out[i:i + 80])) / 15)
    else:  # helicopter
        low = signal.lfilter(*signal.butter(4, 500, fs=sr), noise)
        out = low * (0.6 + 0.4 * np.sign(np.sin(2 * np.pi * rng.uniform(13, 17) * t)))
    out = np.asarray(out, dtype=np.float64)
    out = out / (np.max(np.abs(out)) + 1e-9) * 10 ** (rng.uniform(-20, -3) / 20)
    return (out + 0.002 * rng.standard_normal(n)).astype(np.float32)


def _esc50(top: Path) -> None:
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(ESC_CLASSES):
            for take in "AB":
                src = f"{100000 + 10 * fold + target}"
                name = f"{fold}-{src}-{take}-{target}.wav"
                seed = 1000 + fold * 100 + target * 10 + (take == "B")
                write_audio(top / "audio" / name, esc_sound(target, 5.0, 44100, seed), 44100)
                rows.append([name, fold, target, category, "False", src, take])
    (top / "meta").mkdir(parents=True, exist_ok=True)
    with open(top / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)


AVA_MOVIES = 60  # 40 train movies, so AVA-limited (the first 30) trains on fewer than the full task
AVA_SEGMENT = 1.1  # seconds of background, then of speech, per movie: 11 one-second windows each


def _ava_speech(top: Path) -> None:
    import numpy as np

    rows = []
    for i in range(AVA_MOVIES):
        vid = f"demo{i:07d}"  # 11 characters, like a YouTube id
        gain = 10 ** ((-12 + 4 * (i % 4)) / 20)  # a different level per movie: loudness alone cannot decide
        audio = np.concatenate([nonspeech(AVA_SEGMENT, 16000, seed=3000 + i) * gain,
                                speechlike(AVA_SEGMENT, 16000, seed=4000 + i) * gain])
        write_audio(top / "audio" / f"{vid}.wav", audio, 16000)
        rows += [f"{vid},0.0,{AVA_SEGMENT},NO_SPEECH", f"{vid},{AVA_SEGMENT},{2 * AVA_SEGMENT},CLEAN_SPEECH"]
    (top / "ava_speech_labels_v1.csv").write_text("\n".join(rows) + "\n")


def generate(out: str | Path) -> Path:
    """Write the demo corpora under `out` (idempotent) and return the path of their corpora TOML."""
    out = Path(out)
    _librispeech(out / "LibriSpeech")
    _musan(out / "musan")
    _esc50(out / "ESC-50-master")
    _ava_speech(out / "AVA-Speech")
    config = out / "corpora.toml"
    config.write_text(CONFIG)
    return config
