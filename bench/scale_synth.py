"""N tiny clips for `make bench-scale`: four folder corpora (two speech, two non-speech) and their TOML.

Every clip is a 16 kHz mono PCM16 WAV of 0.05-0.1 s (800-1,600 frames) of seeded noise, so per-clip costs
(listing, probing, planning, catalog rows, index lines) dominate and audio costs stay small. Clip `i` goes
to corpus `i % 4`, 1,000 files per folder (a corpus of nested folders, like LibriSpeech's). The same
(clips, seed) gives the same bytes; `synth.json`, written last, marks a finished tree, which a later run
with the same (clips, seed) reuses instead of writing again.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RATE = 16000
MIN_FRAMES, MAX_FRAMES = 800, 1600  # 0.05-0.1 s
FILES_PER_FOLDER = 1000
# (corpus, domain): both default diets (speech, nonspeech) and `all` get clips from two corpora each.
CORPORA = (("speech_a", "speech"), ("noise_a", "nonspeech"), ("speech_b", "speech"), ("noise_b", "nonspeech"))
# ~3,200 clips per shard, as 3.85 M clips in ~1,200 shards (issue 6 §3): per-shard costs scale as there.
CLIPS_PER_SHARD = 3200
LAYOUT_VERSION = 1  # bump when the tree changes, so an old tree is not reused


@dataclass(frozen=True, slots=True)
class Synth:
    """What was written: the corpora TOML to ingest and what it holds."""

    config: Path
    clips: int
    seconds: float
    seed: int

    def to_dict(self) -> dict:
        return {**asdict(self), "config": str(self.config)}


def _wav_header(frames: int) -> bytes:
    data = frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16) + b"data" + struct.pack("<I", data))


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _toml(frames_total: int, clips: int) -> str:
    mean_seconds = frames_total / RATE / clips
    lines = ["# written by bench/scale_synth.py", "[settings]", 'collection = "scale"',
             f"shard_seconds = {CLIPS_PER_SHARD * mean_seconds:.3f}  # ~{CLIPS_PER_SHARD} clips per shard", ""]
    for corpus, domain in CORPORA:
        lines += [f"[corpora.{corpus}]", 'adapter = "folder"', f'root = "corpora/{corpus}"', f'domain = "{domain}"', ""]
    return "\n".join(lines)


def synthesise(work: Path, clips: int, seed: int = 0) -> Synth:
    """Write (or reuse) `clips` tiny WAVs under `work/corpora/` and `work/corpora.toml`."""
    if clips < len(CORPORA):
        raise ValueError(f"scale bench: clips={clips}, expected at least {len(CORPORA)} (one per corpus)")
    work = Path(work)
    marker = work / "synth.json"
    wanted = {"clips": clips, "seed": seed, "version": LAYOUT_VERSION}
    if marker.exists():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return Synth(config=work / "corpora.toml", clips=clips, seconds=done["seconds"], seed=seed)
    marker.unlink(missing_ok=True)
    shutil.rmtree(work / "corpora", ignore_errors=True)
    rng = np.random.default_rng(seed)
    frames = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, size=clips)
    # One pool of noise; clip i reads its own window of it (fast, and clips differ from each other).
    pool = (rng.standard_normal(RATE * 4) * 3000).astype("<i2").tobytes()
    starts = rng.integers(0, RATE * 4 - MAX_FRAMES, size=clips)
    made: set[Path] = set()
    for i in range(clips):
        corpus = CORPORA[i % len(CORPORA)][0]
        n = i // len(CORPORA)
        folder = work / "corpora" / corpus / f"{n // FILES_PER_FOLDER:04d}"
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        f = int(frames[i])
        s = int(starts[i]) * 2
        (folder / f"{n:07d}.wav").write_bytes(_wav_header(f) + pool[s:s + 2 * f])
    total = int(frames.sum())
    (work / "corpora.toml").write_text(_toml(total, clips))
    _write_json(marker, {**wanted, "seconds": total / RATE})
    return Synth(config=work / "corpora.toml", clips=clips, seconds=total / RATE, seed=seed)
