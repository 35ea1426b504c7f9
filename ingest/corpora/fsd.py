"""The FSD superset: FSD50K (dev, split train) + FSDnoisy18k (train) + FSDKaggle2019 (curated + noisy train).

The three Freesound datasets overlap (the same Freesound clip can appear in two of them), and the paper
keeps each sound once. Dropping duplicates is the engine's job: every record here has
`dedup_group="fsd"`, and `dedup_key=f"freesound:{id}"` wherever the Freesound id is known (FSD50K
`fname`; FSDnoisy18k `fname` = `<id>.wav`; FSDKaggle2019 curated `freesound_id`, present only in the
Zenodo post-competition CSV). The Kaggle-competition CSVs (`fname,labels`) have anonymised names and the
noisy set is Flickr audio, so those get `dedup_key=None` and the engine compares decoded-audio hashes.
Parts are emitted in priority order (FSD50K, FSDnoisy18k, Kaggle curated, Kaggle noisy) because the
first record of a key wins. Any part may be absent, but one must exist; each may sit in the root or in a
folder named after its dataset (`FSD50K/`, `FSDnoisy18k/`, `FSDKaggle2019/`). CSV rows without an audio
file are skipped and counted in one line per part. `label` is the dataset's label string as written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import read_csv, rel, require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = ("FSD50K.dev_audio/ + FSD50K.ground_truth/dev.csv and/or FSDnoisy18k.audio_train/ + "
          "FSDnoisy18k.meta/train.csv and/or FSDKaggle2019.audio_train_{curated,noisy}/ + "
          "FSDKaggle2019.meta/train_{curated,noisy}_post_competition.csv (Kaggle: train_{curated,noisy}.csv "
          "+ train_{curated,noisy}/)")
GROUP = "fsd"


@dataclass(frozen=True, slots=True)
class _Part:
    """One training list of one dataset, in one of its published layouts."""

    subset: str
    folder: str  # the dataset's own folder, if the user unpacked it into one
    meta: str  # CSV, relative to the dataset base
    audio: str  # audio folder, relative to the dataset base
    label_column: str
    id_column: str | None = None  # column holding the Freesound id (a file stem if it ends in .wav)
    extra_columns: tuple[str, ...] = ()
    split: str | None = None  # keep only rows whose `split` equals this
    stem_names: bool = False  # `fname` is the file stem (FSD50K) rather than the file name


PARTS = (
    _Part("fsd50k", "FSD50K", "FSD50K.ground_truth/dev.csv", "FSD50K.dev_audio", "labels", "fname",
          ("mids",), split="train", stem_names=True),
    _Part("fsdnoisy18k", "FSDnoisy18k", "FSDnoisy18k.meta/train.csv", "FSDnoisy18k.audio_train", "label",
          "fname", ("aso_id", "manually_verified", "noisy_small")),
    _Part("fsdkaggle2019_curated", "FSDKaggle2019", "FSDKaggle2019.meta/train_curated_post_competition.csv",
          "FSDKaggle2019.audio_train_curated", "labels", "freesound_id", ("license",)),
    _Part("fsdkaggle2019_curated", "FSDKaggle2019", "train_curated.csv", "train_curated", "labels"),
    _Part("fsdkaggle2019_noisy", "FSDKaggle2019", "FSDKaggle2019.meta/train_noisy_post_competition.csv",
          "FSDKaggle2019.audio_train_noisy", "labels", None, ("flickr_video_URL", "license")),
    _Part("fsdkaggle2019_noisy", "FSDKaggle2019", "train_noisy.csv", "train_noisy", "labels"),
)
SUBSETS = ("fsd50k", "fsdnoisy18k", "fsdkaggle2019_curated", "fsdkaggle2019_noisy")


def _base(root: Path, part: _Part) -> Path | None:
    for base in (root, root / part.folder):
        if (base / part.meta).is_file():
            return base
    return None


def _file_names(directory: Path) -> set[str]:
    with os.scandir(directory) as entries:
        return {e.name for e in entries if e.is_file()}


def _records(root: Path, base: Path, part: _Part) -> Iterator[Recording]:
    audio_dir = require(base / part.audio, "fsd", LAYOUT)
    present = _file_names(audio_dir)
    missing = 0
    for raw in read_csv(base / part.meta):
        row = {k: (v or "").strip() for k, v in raw.items() if k}
        if part.split is not None and row.get("split") != part.split:
            continue
        name = row.get("fname", "") + (".wav" if part.stem_names else "")
        if name not in present:
            missing += 1
            continue
        fid = row.get(part.id_column, "").removesuffix(".wav") if part.id_column else ""
        yield Recording(corpus="fsd", path=rel(audio_dir / name, root), domain="nonspeech", split="train",
                        label=row.get(part.label_column) or None, subset=part.subset,
                        extra={c: row.get(c, "") for c in part.extra_columns},
                        dedup_group=GROUP, dedup_key=f"freesound:{fid}" if fid else None)
    if missing:
        log.warning("fsd: %d %s row(s) of %s have no file in %s", missing, part.subset, base / part.meta,
                    audio_dir)


def describe(root: Path) -> Iterator[Recording]:
    """Each present part in priority order; within a part, sorted by path."""
    found: dict[str, tuple[Path, _Part]] = {}
    for part in PARTS:
        base = _base(root, part)
        if base is not None and part.subset not in found:  # Zenodo layout first, Kaggle's as fallback
            found[part.subset] = (base, part)
    if not found:
        require(root / PARTS[0].meta, "fsd", LAYOUT)
    for subset in SUBSETS:
        if subset in found:
            base, part = found[subset]
            yield from sorted(_records(root, base, part), key=lambda r: r.path)


CORPUS = Corpus(name="fsd", domain="nonspeech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe)
