"""CHiME-5 (Table I "CHiME-5 ^"): every training stream, whole sessions cut into 10-s clips by the engine.

Layout: `CHiME5/audio/train/S??_U0?.CH?.wav` (Kinect arrays, one mono file per channel) and
`CHiME5/audio/train/S??_P??.wav` (binaural in-ear mics, 2 channels). Every array channel and every worn
mic is its own recording: that is how the paper's 1,111.9 h arises from ~40 h of dinner parties. The
training sessions are exactly those under `audio/train/`; `dev/` and `eval/` are never read. The
transcriptions (`transcriptions/train/S??.json`) are not needed and not required.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "CHiME5/audio/train/S??_{U0?.CH?,P??}.wav"
_ARRAY = re.compile(r"^(?P<session>S\d\d)_(?P<device>U\d\d)\.(?P<channel>CH\d)\.wav$")
_WORN = re.compile(r"^(?P<session>S\d\d)_(?P<device>P\d\d)\.wav$")


def describe(root: Path) -> Iterator[Recording]:
    """One record per array channel (speaker unknown) and per worn mic (speaker = its wearer)."""
    train = require(root / "audio" / "train", "chime5", LAYOUT)
    ignored = 0
    for wav in sorted(train.glob("*.wav")):
        array, worn = _ARRAY.match(wav.name), _WORN.match(wav.name)
        if array:
            speaker, subset, extra = None, "array", array.groupdict()
        elif worn:
            speaker, subset, extra = worn["device"], "worn", worn.groupdict()
        else:
            ignored += 1
            continue
        yield Recording(corpus="chime5", path=wav.relative_to(root).as_posix(), domain="speech",
                        split="train", speaker=speaker, subset=subset, extra=extra)
    if ignored:
        log.warning("chime5: ignored %d wav file(s) in %s not named S??_U0?.CH?.wav or S??_P??.wav",
                    ignored, train)


CORPUS = Corpus(name="chime5", domain="speech", cut=True, kind="pretrain", layout=LAYOUT,
                describe=describe, top="CHiME5", options=())
