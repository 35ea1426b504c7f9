"""freefield1010 (ff1010bird): `ff1010bird_wav/wav/<itemid>.wav` + `ff1010bird_metadata.csv`.

The audio zip (`ff1010bird_wav.zip`) unpacks to `wav/`, and the metadata CSV is a separate download, so
it usually sits beside the unpacked folder rather than inside it. We therefore look for the CSV in the
resolved root first and then in its parent: whether the user points at the folder holding
`ff1010bird_wav/` or at `ff1010bird_wav/` itself, paths stay `wav/<itemid>.wav` (same clip keys).
Both metadata releases are read: the BAD-challenge `ff1010bird_metadata.csv` (`itemid,hasbird`) and the
2018 re-release `ff1010bird_metadata_2018.csv` (`itemid,datasetid,hasbird`).

The whole corpus is used for pre-training (it has no official partitions): every clip is `train`, one
example per 10-s clip (not cut). `label` is the `hasbird` flag as written ("0"/"1"); clips missing from
the CSV keep `label=None` (logged once), CSV rows without a file are simply not listed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import audio_files, read_csv, rel, require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "ff1010bird_wav/wav/<itemid>.wav + ff1010bird_metadata.csv (beside or inside ff1010bird_wav/)"
METADATA_NAMES = ("ff1010bird_metadata.csv", "ff1010bird_metadata_2018.csv")


def _metadata_file(root: Path) -> Path:
    for folder in (root, root.parent):
        for name in METADATA_NAMES:
            if (folder / name).is_file():
                return folder / name
    return require(root / METADATA_NAMES[0], "freefield1010", LAYOUT)


def describe(root: Path) -> Iterator[Recording]:
    """Every `wav/*.wav` under `root`, labelled with its `hasbird` flag."""
    wav_dir = require(root / "wav", "freefield1010", LAYOUT)
    hasbird = {row["itemid"].strip().removesuffix(".wav"): row["hasbird"].strip()
               for row in read_csv(_metadata_file(root))}
    unlabelled = 0
    for wav in audio_files(wav_dir, (".wav",)):
        label = hasbird.get(wav.stem)
        unlabelled += label is None
        yield Recording(corpus="freefield1010", path=rel(wav, root), domain="nonspeech", split="train",
                        label=label, extra={"itemid": wav.stem})
    if unlabelled:
        log.warning("freefield1010: %d clip(s) under %s have no row in the metadata CSV (label=None)",
                    unlabelled, wav_dir)


CORPUS = Corpus(name="freefield1010", domain="nonspeech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe, top="ff1010bird_wav")
