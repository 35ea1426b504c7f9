"""ESC-50: `ESC-50-master/audio/<filename>` listed by `meta/esc50.csv`.

The study's split (SPEC §3) is fixed by the official folds: fold 4 is validation, fold 5 test, folds 1-3
train. Folds are read from the CSV, not from the file name, because the CSV is the dataset's authority.
Rows are listed as the CSV names them; a listed file that is missing is the engine's per-item failure
(its `on_error` policy), so a broken download is reported rather than silently shrinking the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.corpora import Corpus
from ingest.corpora._util import read_csv, require
from ingest.records import Recording

LAYOUT = "ESC-50-master/{meta/esc50.csv, audio/<fold>-<clip>-<take>-<target>.wav}"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
SPLIT_BY_FOLD = {1: "train", 2: "train", 3: "train", 4: "valid", 5: "test"}


def split_of(fold: int) -> str:
    """SPEC §3: fold 4 valid, fold 5 test, folds 1-3 train."""
    if fold not in SPLIT_BY_FOLD:
        raise ValueError(f"esc50: fold={fold!r}, expected one of {sorted(SPLIT_BY_FOLD)}")
    return SPLIT_BY_FOLD[fold]


def describe(root: Path) -> Iterator[Recording]:
    meta = require(root / "meta" / "esc50.csv", "esc50", LAYOUT)
    rows = list(read_csv(meta))
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise ValueError(f"esc50: {str(meta)!r} lacks columns {sorted(set(COLUMNS) - set(rows[0]))}")
    for row in sorted(rows, key=lambda r: r["filename"]):
        fold = int(row["fold"])
        yield Recording(
            corpus="esc50", path=f"audio/{row['filename']}", domain="nonspeech", split=split_of(fold),
            label=row["category"],
            extra={"fold": fold, "target": int(row["target"]), "esc10": row["esc10"] == "True"},
        )


CORPUS = Corpus(name="esc50", domain="nonspeech", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, top="ESC-50-master")
