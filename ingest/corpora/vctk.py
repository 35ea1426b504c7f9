"""VCTK 0.92: `wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac` + `speaker-info.txt`.

The speaker-identification probe (SPEC §3) splits *within* each speaker by utterance number: 001-025
valid, 026-050 test, the rest train (the low numbers are the read-aloud passages every speaker shares).
Only mic1 is used, so each utterance appears once. Speakers listed in `speaker-info.txt` without audio
are simply absent; speakers with audio but no info row keep their audio with empty metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

LAYOUT = "VCTK-Corpus-0.92/{speaker-info.txt, wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac}"
AUDIO_DIR = "wav48_silence_trimmed"
MIC = "mic1"
_COMMENT = re.compile(r"\(([^)]*)\)")


def split_of(utterance: int) -> str:
    """SPEC §3: utterance number <= 25 valid, 26-50 test, > 50 train."""
    return "valid" if utterance <= 25 else "test" if utterance <= 50 else "train"


def speaker_info(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of `speaker-info.txt`: whitespace columns `ID AGE GENDER ACCENTS REGION COMMENTS`.

    REGION may be several words or absent, and COMMENTS are in parentheses (e.g. "(mic2 files
    unavailable)"), so only the first four columns are split; the rest is region plus comment. Release
    0.80 wrote ids without the `p` (`225`); they are normalised to the folder names (`p225`).
    """
    info: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=4)
        if len(parts) < 3 or parts[0].upper() == "ID":
            continue
        spk = f"p{parts[0]}" if parts[0].isdigit() else parts[0]
        rest = parts[4] if len(parts) > 4 else ""
        comment = " ".join(_COMMENT.findall(rest))
        info[spk] = {
            "age": int(parts[1]) if parts[1].isdigit() else parts[1],
            "gender": parts[2],
            "accent": parts[3] if len(parts) > 3 else "",
            "region": " ".join(_COMMENT.sub(" ", rest).split()),
            "comment": comment,
        }
    return info


def describe(root: Path) -> Iterator[Recording]:
    info = speaker_info(require(root / "speaker-info.txt", "vctk", LAYOUT))
    audio = require(root / AUDIO_DIR, "vctk", LAYOUT)
    for spk_dir in sorted(d for d in audio.iterdir() if d.is_dir()):
        meta = info.get(spk_dir.name, {})
        for flac in sorted(spk_dir.glob(f"{spk_dir.name}_*_{MIC}.flac")):
            number = flac.stem.split("_")[1]
            if not number.isdigit():
                continue
            yield Recording(
                corpus="vctk", path=f"{AUDIO_DIR}/{spk_dir.name}/{flac.name}", domain="speech",
                split=split_of(int(number)), label=spk_dir.name, speaker=spk_dir.name,
                extra={"utterance": int(number), "gender": meta.get("gender"), "age": meta.get("age"),
                       "accent": meta.get("accent"), "region": meta.get("region")},
            )


CORPUS = Corpus(name="vctk", domain="speech", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, top="VCTK-Corpus-0.92")
