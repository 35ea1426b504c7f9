"""UrbanSound8K: `UrbanSound8K/audio/fold<k>/<slice_file_name>` listed by `metadata/UrbanSound8K.csv`.

The study's split (SPEC §3) follows the official folds: fold 9 validation, fold 10 test, folds 1-8 train.
The audio keeps each clip's original Freesound rate and channel count (they vary); the engine resamples.
A listed file that is missing is the engine's per-item failure, as for ESC-50.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.corpora import Corpus
from ingest.corpora._util import read_csv, require
from ingest.records import Recording

LAYOUT = "UrbanSound8K/{metadata/UrbanSound8K.csv, audio/fold<1-10>/<fsID>-<classID>-<occ>-<slice>.wav}"
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def split_of(fold: int) -> str:
    """SPEC §3: fold 9 valid, fold 10 test, folds 1-8 train."""
    if not 1 <= fold <= 10:
        raise ValueError(f"urbansound8k: fold={fold!r}, expected 1-10")
    return {9: "valid", 10: "test"}.get(fold, "train")


def describe(root: Path) -> Iterator[Recording]:
    meta = require(root / "metadata" / "UrbanSound8K.csv", "urbansound8k", LAYOUT)
    rows = list(read_csv(meta))
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise ValueError(f"urbansound8k: {str(meta)!r} lacks columns {sorted(set(COLUMNS) - set(rows[0]))}")
    for row in sorted(rows, key=lambda r: (int(r["fold"]), r["slice_file_name"])):
        fold = int(row["fold"])
        yield Recording(
            corpus="urbansound8k", path=f"audio/fold{fold}/{row['slice_file_name']}", domain="nonspeech",
            split=split_of(fold), label=row["class"],
            extra={"fold": fold, "class_id": int(row["classID"]), "fs_id": row["fsID"],
                   "salience": int(row["salience"])},
        )


CORPUS = Corpus(name="urbansound8k", domain="nonspeech", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, top="UrbanSound8K")
