"""AMI (Table I "AMI ^"): training meetings, every stream, whole meetings cut into 10-s clips by the engine.

Layout (as the AMI download tool writes it): `amicorpus/<meeting>/audio/<meeting>.<stream>.wav`, 16 kHz,
with streams `Mix-Headset`, `Headset-<n>` (one per participant), `Array1-0<k>` and `Array2-0<k>` (one
mono file per array microphone). Only the training meetings of the official full-corpus-ASR partition
are read; that list ships as `ami_train_meetings.txt` beside this module (136 ids; see its header for
sources), because nothing in the audio tree says which meetings are train. Lapel streams, which the
paper's layout does not list, are skipped (and counted). Option `streams` restricts the stream families
(`Mix-Headset`, `Headset`, `Array1`, `Array2`); by default all four are used, the paper's 792.1 h.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import Iterator, Sequence

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "amicorpus/<meeting>/audio/<meeting>.{Mix-Headset,Headset-?,Array?-0?}.wav"
STREAMS = ("Mix-Headset", "Headset", "Array1", "Array2")
_FILE = re.compile(r"^(?P<meeting>[A-Z]{2}\d{4}[a-z]?)\."
                   r"(?P<stream>Mix-Headset|Headset-\d|Array[12]-\d\d)\.wav$")


@cache
def train_meetings() -> tuple[str, ...]:
    """The full-corpus-ASR training meeting ids, from the package data file."""
    text = Path(__file__).with_name("ami_train_meetings.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _streams(streams: Sequence[str] | None) -> set[str]:
    if streams is None:
        return set(STREAMS)
    if not isinstance(streams, (list, tuple)) or not streams or not all(s in STREAMS for s in streams):
        raise ValueError(f"ami: streams must be a non-empty list from {list(STREAMS)}, got {streams!r}")
    return set(streams)


def _family(stream: str) -> str:
    return stream if stream == "Mix-Headset" else stream.split("-")[0]


def describe(root: Path, streams: Sequence[str] | None = None) -> Iterator[Recording]:
    """Each present training meeting's wanted streams, meetings and files in sorted order."""
    wanted, meetings = _streams(streams), train_meetings()
    present = [m for m in sorted(meetings) if (root / m / "audio").is_dir()]
    if not present:
        require(root / meetings[0] / "audio", "ami", LAYOUT)
    ignored = 0
    for meeting in present:
        for wav in sorted((root / meeting / "audio").glob("*.wav")):
            match = _FILE.match(wav.name)
            if not match or match["meeting"] != meeting:
                ignored += 1
                continue
            family = _family(match["stream"])
            if family in wanted:
                yield Recording(corpus="ami", path=wav.relative_to(root).as_posix(), domain="speech",
                                split="train", speaker=None, subset=family,
                                extra={"meeting": meeting, "stream": match["stream"]})
    train = set(meetings)
    others = sum(1 for d in root.iterdir() if d.is_dir() and d.name not in train)
    log.info("ami: read %d of %d training meetings; skipped %d non-training meeting folder(s) and %d "
             "file(s) of other streams", len(present), len(meetings), others, ignored)
    if len(present) < len(meetings):
        log.warning("ami: %d training meeting(s) have no audio folder under %s",
                    len(meetings) - len(present), root)


CORPUS = Corpus(name="ami", domain="speech", cut=True, kind="pretrain", layout=LAYOUT,
                describe=describe, top="amicorpus", options=("streams",))
