"""AudioSet: `balanced_train_segments.csv` and/or `unbalanced_train_segments.csv` + downloaded segments.

The CSVs start with three `#` lines, then rows `YTID, start_seconds, end_seconds, "mid1,mid2"` (spaces
after the commas, the label list quoted). AudioSet ships no audio, and each download tool names files its
own way, so files are found by name: the root is walked once (any depth) and each segment's candidate
names are looked up, trying the `name_pattern`s in order. Placeholders:

- `{ytid}`: the YouTube id;
- `{start}`, `{end}`: the seconds exactly as written in the CSV (`30.000`);
- `{start_int}`, `{end_int}`: whole seconds (`30`); `{start_ms}`, `{end_ms}`: milliseconds (`30000`).

The default tries `{ytid}_{start}` then `Y{ytid}` (PANNs-style); DCASE/DESED files are
`Y{ytid}_{start}_{end}`. Extensions: wav, flac, m4a, opus, mp3, ogg; if two files share a name, the first
in sorted path order wins. Only the two training lists are read (eval is never listed); a YTID in both
is listed once, from the balanced list. Segments without a file are not listed: one warning line counts
them, and `missing_segments()` returns their YTIDs (the paper had 1,749,124 of the ~2.04 M segments).
`label` is the mids string; downloaded files are already the 10-s segment, so nothing is cut.
"""

from __future__ import annotations

import csv
import logging
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = ("balanced_train_segments.csv and/or unbalanced_train_segments.csv + "
          "<ytid>_<start>.{wav,flac,m4a,opus,mp3,ogg} (or Y<ytid>.*) anywhere under the root")
LISTS = (("balanced", "balanced_train_segments.csv"), ("unbalanced", "unbalanced_train_segments.csv"))
EXTENSIONS = (".wav", ".flac", ".m4a", ".opus", ".mp3", ".ogg")
DEFAULT_PATTERNS = ("{ytid}_{start}", "Y{ytid}")
PLACEHOLDERS = ("ytid", "start", "end", "start_int", "end_int", "start_ms", "end_ms")


@dataclass(frozen=True, slots=True)
class Segment:
    """One row of a segment list; `names()` gives the values a name_pattern may use."""

    ytid: str
    start: str  # as written in the CSV
    end: str
    labels: str
    subset: str

    def names(self) -> dict[str, str]:
        s, e = float(self.start), float(self.end)
        return {"ytid": self.ytid, "start": self.start, "end": self.end, "start_int": str(int(s)),
                "end_int": str(int(e)), "start_ms": str(round(s * 1000)), "end_ms": str(round(e * 1000))}


def _patterns(name_pattern: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(name_pattern, str):
        patterns: tuple = (name_pattern,)
    else:
        patterns = tuple(name_pattern) if isinstance(name_pattern, (list, tuple)) else ()
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"audioset: name_pattern must be a string or a list of strings, got {name_pattern!r}")
    example = Segment("--PJHxphWEs", "30.000", "40.000", "", "").names()
    for pattern in patterns:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
        if "ytid" not in fields or not fields <= set(PLACEHOLDERS):
            raise ValueError(f"audioset: name_pattern {pattern!r} must use {{ytid}} and only {PLACEHOLDERS}")
        try:
            pattern.format(**example)
        except (ValueError, IndexError) as err:
            raise ValueError(f"audioset: name_pattern {pattern!r} does not format: {err}") from None
    return patterns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_list(path: Path, subset: str) -> Iterator[Segment]:
    with open(path, newline="", encoding="utf-8") as f:
        lines = (line for line in f if line.strip() and not line.lstrip().startswith("#"))
        for row in csv.reader(lines, skipinitialspace=True):
            if len(row) < 4 or not all(_is_number(v) for v in row[1:3]):
                raise ValueError(f"audioset: {str(path)!r}: expected YTID, start, end, labels; got {row!r}")
            yield Segment(row[0].strip(), row[1].strip(), row[2].strip(), row[3].strip(), subset)


def _segments(root: Path) -> list[Segment]:
    """Training segments, balanced then unbalanced, each sorted by YTID; one per YTID (balanced wins)."""
    present = [(subset, root / name) for subset, name in LISTS if (root / name).is_file()]
    if not present:
        require(root / LISTS[0][1], "audioset", LAYOUT)
    seen: set[str] = set()
    out: list[Segment] = []
    for subset, path in present:
        for seg in sorted(_read_list(path, subset), key=lambda s: s.ytid):
            if seg.ytid not in seen:
                seen.add(seg.ytid)
                out.append(seg)
    return out


def _audio_index(root: Path) -> dict[str, str]:
    """File name without extension -> relative POSIX path, over the whole tree, walked once in sorted order.

    Strings, not Paths: a full download has ~2 M files.
    """
    index: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if folder == "." else f"{folder}/"
        for name in sorted(filenames):
            stem, dot, ext = name.rpartition(".")
            if dot and f".{ext.lower()}" in EXTENSIONS:
                index.setdefault(stem, prefix + name)
    return index


def _find(index: dict[str, str], seg: Segment, patterns: tuple[str, ...]) -> str | None:
    names = seg.names()
    for pattern in patterns:
        path = index.get(pattern.format(**names))
        if path is not None:
            return path
    return None


def _match(root: Path, name_pattern: str | Sequence[str]) -> tuple[list[tuple[Segment, str]], list[str]]:
    patterns = _patterns(name_pattern)
    segs = _segments(root)
    index = _audio_index(root)
    found: list[tuple[Segment, str]] = []
    missing: list[str] = []
    for seg in segs:
        path = _find(index, seg, patterns)
        if path is None:
            missing.append(seg.ytid)
        else:
            found.append((seg, path))
    return found, missing


def missing_segments(root: Path, name_pattern: str | Sequence[str] = DEFAULT_PATTERNS) -> list[str]:
    """YTIDs of training segments with no audio file under `root`, in listing order."""
    return _match(Path(root), name_pattern)[1]


def describe(root: Path, name_pattern: str | Sequence[str] = DEFAULT_PATTERNS) -> Iterator[Recording]:
    """One record per training segment whose file is present."""
    found, missing = _match(root, name_pattern)
    if missing:
        log.warning("audioset: %d of %d training segments have no file under %s (name_pattern=%r), e.g. %s",
                    len(missing), len(found) + len(missing), root, name_pattern, ", ".join(missing[:5]))
    for seg, path in found:
        yield Recording(corpus="audioset", path=path, domain="nonspeech", split="train",
                        label=seg.labels, subset=seg.subset,
                        extra={"ytid": seg.ytid, "start_seconds": float(seg.start),
                               "end_seconds": float(seg.end)})


CORPUS = Corpus(name="audioset", domain="nonspeech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe, top=None, options=("name_pattern",))
