"""Common Voice, English (Table I "Mozilla Commonvoice %"): one example per clip, not cut.

Two layouts:
- A release folder (`cv-corpus-*/en/`): `train.tsv` + `clips/*.mp3`. One record per `train.tsv` row
  (the official training partition); columns are read by name because releases add and reorder
  columns. The TSV is read with quoting off, as Common Voice writes it: sentences may hold a bare `"`.
  Speaker = `client_id`; `extra` keeps sentence, age, gender and locale.
- The paper took Common Voice through deepspeech.pytorch (`data/common_voice.py`), which converts each
  split to `<target>/<split>/wav/<name>.wav` + `<split>/txt/<name>.txt` and writes a manifest. Option
  `manifest="<file>"` (relative to the root, or absolute) reads one; two formats exist:
  * `.json` (deepspeech.pytorch >= 3): `{"root_path": "<abs>/<split>", "samples": [{"wav_path":
    "wav/<name>.wav", "transcript_path": "txt/<name>.txt"}, ...]}`, paths relative to `root_path`;
  * `.csv` (older releases): no header, one `<abs wav path>,<abs txt path>` line per sample.
  The root is the folder those paths lie under (`<target>` or `<target>/<split>`). A manifest written
  on another machine still works: an entry outside the root is looked up by its tail
  (`<split>/wav/<name>.wav`, then `wav/<name>.wav`). No speaker is known in this layout.
Rows or entries whose audio file is missing are skipped with one warning line giving the count.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "train.tsv + clips/*.mp3 (a Common Voice release's <locale>/ folder), or option manifest=<file>"
EXTRA_COLUMNS = ("sentence", "age", "gender", "locale")


def _release(root: Path) -> Iterator[Recording]:
    tsv = require(root / "train.tsv", "commonvoice", LAYOUT)
    clips = require(root / "clips", "commonvoice", LAYOUT)
    with open(tsv, newline="", encoding="utf-8") as f:
        rows = {row["path"]: row for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                if row.get("path")}
    missing = 0
    for name, row in sorted(rows.items()):
        if not (clips / name).is_file() and (clips / f"{name}.mp3").is_file():
            name = f"{name}.mp3"  # the earliest releases list clip names without the extension
        if not (clips / name).is_file():
            missing += 1
            continue
        yield Recording(corpus="commonvoice", path=f"clips/{name}", domain="speech", split="train",
                        speaker=row.get("client_id") or None, subset=row.get("locale") or None,
                        extra={c: row.get(c) or "" for c in EXTRA_COLUMNS})
    if missing:
        log.warning("commonvoice: skipped %d train.tsv row(s) whose clip is missing under %s", missing, clips)


def _entries(manifest: Path) -> list[tuple[Path, Path | None]]:
    """(wav, transcript) paths as the manifest states them: absolute, or relative to the corpus root."""
    if manifest.suffix.lower() == ".csv":
        with open(manifest, newline="", encoding="utf-8") as f:
            return [(Path(r[0]), Path(r[1]) if len(r) > 1 else None) for r in csv.reader(f)
                    if r and r[0] != "wav_path"]  # deepspeech.pytorch writes no header; tolerate one
    if manifest.suffix.lower() != ".json":
        raise ValueError(f"commonvoice: manifest {str(manifest)!r} must be a deepspeech.pytorch "
                         ".json or .csv file")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise ValueError(f"commonvoice: {str(manifest)!r} has no 'samples' list "
                         "(expected a deepspeech.pytorch manifest)")
    bad = [i for i, s in enumerate(data["samples"]) if not isinstance(s, dict) or not s.get("wav_path")]
    if bad:
        raise ValueError(f"commonvoice: {len(bad)} sample(s) of {str(manifest)!r} lack 'wav_path' "
                         f"(first: #{bad[0]})")
    base = Path(data.get("root_path") or "")
    return [(base / s["wav_path"], base / s["transcript_path"] if s.get("transcript_path") else None)
            for s in data["samples"]]


def _locate(root: Path, stated: Path) -> str | None:
    """The entry's path relative to the root, or None if its file is not there."""
    candidate = Path(os.path.normpath(stated if stated.is_absolute() else root / stated))
    for base in dict.fromkeys((Path(os.path.normpath(root.absolute())), root.resolve())):
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate.relative_to(base).as_posix()
    for n in (3, 2):  # deepspeech.pytorch's own tree: <split>/wav/<name>.wav, then wav/<name>.wav
        tail = Path(*candidate.parts[-n:])
        if len(candidate.parts) > n and (root / tail).is_file():
            return tail.as_posix()
    return None


def _manifest(root: Path, manifest: str | os.PathLike[str]) -> Iterator[Recording]:
    if not isinstance(manifest, (str, os.PathLike)) or not str(manifest):
        raise ValueError(f"commonvoice: manifest must be a file name, got {manifest!r}")
    path = Path(manifest) if Path(manifest).is_absolute() else root / manifest
    require(path, "commonvoice", LAYOUT)
    located: dict[str, str | None] = {}
    missing = 0
    for wav, txt in _entries(path):
        rel = _locate(root, wav)
        if rel is None:
            missing += 1
            continue
        located[rel] = _locate(root, txt) if txt is not None else None
    for rel, transcript in sorted(located.items()):
        yield Recording(corpus="commonvoice", path=rel, domain="speech", split="train",
                        extra={"transcript_path": transcript})
    if missing:
        log.warning("commonvoice: skipped %d manifest entr(ies) of %s whose wav is missing under %s",
                    missing, path, root)


def describe(root: Path, manifest: str | None = None) -> Iterator[Recording]:
    """The release's training clips, or the samples of a deepspeech.pytorch manifest, sorted by path."""
    yield from (_release(root) if manifest is None else _manifest(root, manifest))


CORPUS = Corpus(name="commonvoice", domain="speech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe, top=None, options=("manifest",))
