"""Speech Commands v0.02: `<word>/<speaker>_nohash_<n>.wav` + `validation_list.txt`, `testing_list.txt`.

The tarball extracts flat; torchaudio keeps it under `SpeechCommands/speech_commands_v0.02`, which `top`
accepts too. Splits follow the official lists (SPEC §3): listed in `validation_list.txt` -> valid, in
`testing_list.txt` -> test, everything else train. Folders starting with `_` (`_background_noise_`, and
`_silence_` folders some recipes generate) are not words and are skipped. The speaker is the hash
before `_nohash_`, which is what keeps one speaker inside one split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "speech_commands_v0.02/{<word>/<speaker>_nohash_<n>.wav, validation_list.txt, testing_list.txt}"
WORDS = (  # the 35 words of v0.02 (v0.01's 30 plus backward, follow, forward, learn, visual)
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
HASH_DIVIDER = "_nohash_"


def _listed(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def describe(root: Path) -> Iterator[Recording]:
    valid = _listed(require(root / "validation_list.txt", "speech_commands", LAYOUT))
    test = _listed(require(root / "testing_list.txt", "speech_commands", LAYOUT))
    seen = 0
    for word_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))):
        for wav in sorted(word_dir.glob("*.wav")):
            rel = f"{word_dir.name}/{wav.name}"
            speaker, _, utterance = wav.stem.partition(HASH_DIVIDER)
            split = "test" if rel in test else "valid" if rel in valid else "train"
            seen += rel in test or rel in valid
            yield Recording(
                corpus="speech_commands", path=rel, domain="speech", split=split, label=word_dir.name,
                speaker=speaker, extra={"utterance": int(utterance) if utterance.isdigit() else utterance},
            )
    missing = len(valid) + len(test) - seen
    if missing:
        log.warning("speech_commands: %d file(s) named by the validation/testing lists are missing", missing)


CORPUS = Corpus(name="speech_commands", domain="speech", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, top="SpeechCommands/speech_commands_v0.02")
