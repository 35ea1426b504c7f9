"""MUSAN: `musan/{music,noise,speech}/<source>/*.wav` (16 kHz).

The paper's 106.5 h counts all three parts and calls them all non-speech, so every part is listed with
`domain="nonspeech"` and `subset` = the part name; `exclude_speech=True` drops `speech/` for users who
want a strictly non-speech diet. Files are long (music up to minutes), so the engine cuts them into
10-s clips (Table I "^"). Only `.wav` files are listed: each source folder also holds `LICENSE` and
`ANNOTATIONS` text files, and the top holds a `README`. `extra["source"]` is the source folder (fma,
free-sound, librivox, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import audio_files, rel, require
from ingest.records import Recording

LAYOUT = "musan/{music,noise,speech}/<source>/*.wav"
PARTS = ("music", "noise", "speech")


def describe(root: Path, exclude_speech: bool = False) -> Iterator[Recording]:
    """Every `.wav` of the present parts, in part order then path order."""
    if not isinstance(exclude_speech, bool):
        raise ValueError(f"musan: exclude_speech must be true or false, got {exclude_speech!r}")
    parts = [p for p in PARTS if not (exclude_speech and p == "speech")]
    present = [p for p in parts if (root / p).is_dir()]
    if not present:
        require(root / parts[0], "musan", LAYOUT)
    for part in present:
        for wav in audio_files(root / part, (".wav",)):
            relative = wav.relative_to(root / part)
            source = relative.parts[0] if len(relative.parts) > 1 else ""
            yield Recording(corpus="musan", path=rel(wav, root), domain="nonspeech", split="train",
                            subset=part, extra={"source": source})


CORPUS = Corpus(name="musan", domain="nonspeech", cut=True, kind="pretrain", layout=LAYOUT,
                describe=describe, top="musan", options=("exclude_speech",))
