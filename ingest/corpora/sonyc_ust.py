"""SONYC-UST v2: `audio/*.wav` + `annotations.csv` (one row per annotator per recording).

`annotations.csv` starts `split, sensor_id, audio_filename, annotator_id, ...` then spatiotemporal and
label columns. A recording appears once per annotator (three volunteers, plus SONYC team members and the
agreed ground truth, `annotator_id` 0, on the verified subset), so rows are de-duplicated by
`audio_filename`; only `split == "train"` is kept (13,538 recordings in v2). The tags are multi-annotator
and not needed for self-supervised pre-training, so `label` stays None; `sensor_id` goes to `extra`
(train and validate are disjoint by sensor, which users may want to check).

The Zenodo release ships the audio as `audio-<n>.tar.gz`; we accept the files extracted into `audio/` or
left in per-archive `audio-<n>/` folders. Rows whose file is absent are skipped and counted in one line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import read_csv, rel, require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "audio/*.wav + annotations.csv (columns split, sensor_id, audio_filename, annotator_id, ...)"
SPLIT = "train"
AUDIO_DIR = re.compile(r"audio(-\d+)?")  # audio/ or the per-archive audio-<n>/


def _audio_index(root: Path) -> dict[str, Path]:
    """File name -> path over `audio/` and any `audio-<n>/` folders (first in sorted order wins)."""
    index: dict[str, Path] = {}
    folders = sorted(d for d in root.glob("audio*") if d.is_dir() and AUDIO_DIR.fullmatch(d.name))
    for folder in folders:
        for wav in sorted(folder.rglob("*.wav")):
            index.setdefault(wav.name, wav)
    return index


def _train_rows(annotations: Path) -> dict[str, str]:
    """audio_filename -> sensor_id for training recordings, one entry per recording."""
    first: dict[str, tuple[str, str]] = {}
    for row in read_csv(annotations):
        name = (row.get("audio_filename") or "").strip()
        if name and name not in first:
            first[name] = ((row.get("split") or "").strip(), (row.get("sensor_id") or "").strip())
    return {name: sensor for name, (split, sensor) in first.items() if split == SPLIT}


def describe(root: Path) -> Iterator[Recording]:
    """One record per training recording listed in `annotations.csv` whose audio is present."""
    annotations = require(root / "annotations.csv", "sonyc_ust", LAYOUT)
    index = _audio_index(root)
    if not index:
        require(root / "audio", "sonyc_ust", LAYOUT)
    missing: list[str] = []
    for name, sensor in sorted(_train_rows(annotations).items()):
        wav = index.get(name)
        if wav is None:
            missing.append(name)
            continue
        yield Recording(corpus="sonyc_ust", path=rel(wav, root), domain="nonspeech", split="train",
                        extra={"sensor_id": sensor})
    if missing:
        log.warning("sonyc_ust: %d training recording(s) in annotations.csv have no audio file, e.g. %s",
                    len(missing), ", ".join(missing[:5]))


CORPUS = Corpus(name="sonyc_ust", domain="nonspeech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe)
