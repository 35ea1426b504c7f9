"""AVA-Speech: `ava_speech_labels_v1.csv` + one audio file per movie, named `<video_id>.<ext>` anywhere.

The labels file has no header; each row is `video_id,start,end,label` (seconds of the movie; the dense
annotation covers 15 minutes, 900-1800 s). Audio is fetched by users with various tools, so a movie is
used only when a file with its id as stem is found under the root (SPEC §3: "only the movies whose
audio is present"). Split by movie (SPEC §3): present movies sorted by id (code-point order), the last
`n_test` test, the `n_valid` before them valid, the rest train; `limited_train` marks the first
`n_limited` train movies (the "AVA-Speech limited" task).

`describe` yields one Recording per movie covering the annotated span. `windows` turns the annotations
into the 1-s probe clips as a table of (video, start, end) rows - audio is never copied. Times are
seconds *of the audio file*: `audio_offset` is the movie time at which each file begins (0 for whole
movies, 900 for files cut to the annotated 15 minutes).
"""

from __future__ import annotations

import bisect
import csv
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ingest.corpora import Corpus
from ingest.corpora._util import audio_files, rel, require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "ava_speech_labels_v1.csv (video_id,start,end,label; no header) + <video_id>.{wav,flac,...} under root"
LABELS_FILE = "ava_speech_labels_v1.csv"
CLASSES = {"NO_SPEECH": "background", "CLEAN_SPEECH": "speech", "SPEECH_WITH_MUSIC": "speech",
           "SPEECH_WITH_NOISE": "speech"}
N_TEST, N_VALID, N_LIMITED = 10, 10, 30


@dataclass(frozen=True, slots=True)
class Movie:
    video_id: str
    path: str  # audio file, relative to the root
    split: str
    limited_train: bool
    annotations: tuple[tuple[float, float, str], ...]  # (start, end, "speech"|"background"), movie time


@dataclass(frozen=True, slots=True)
class Window:
    """One 1-s probe clip: `start`/`end` are seconds of the audio file at `path`."""

    video_id: str
    start: float
    end: float
    label: str  # "speech" | "background"
    split: str
    limited_train: bool
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Window":
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def read_labels(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Annotations per video id, sorted by start, labels mapped to speech/background."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                vid, start, end, label = (x.strip() for x in row)
                out.setdefault(vid, []).append((float(start), float(end), CLASSES[label]))
            except (ValueError, KeyError):
                raise ValueError(f"ava_speech: {str(path)!r} line {line}: {row!r}, expected "
                                 f"video_id,start,end,label with label in {sorted(CLASSES)}") from None
    return {vid: sorted(rows) for vid, rows in out.items()}


def movies(root: Path, n_test: int = N_TEST, n_valid: int = N_VALID,
           n_limited: int = N_LIMITED) -> list[Movie]:
    """The annotated movies whose audio is present, sorted by id, with their split."""
    labels = read_labels(require(root / LABELS_FILE, "ava_speech", LAYOUT))
    found: dict[str, Path] = {}
    for path in audio_files(root):
        if path.stem in labels:
            if path.stem in found:
                log.warning("ava_speech: %s has two audio files; using %s, ignoring %s",
                            path.stem, rel(found[path.stem], root), rel(path, root))
                continue
            found[path.stem] = path
    present = sorted(found)
    if len(present) < len(labels):
        log.warning("ava_speech: %d of %d annotated movies have no audio under %s; using %d",
                    len(labels) - len(present), len(labels), root, len(present))
    n = len(present)
    out = []
    for i, vid in enumerate(present):
        split = "test" if i >= n - n_test else "valid" if i >= n - n_test - n_valid else "train"
        out.append(Movie(vid, rel(found[vid], root), split, split == "train" and i < n_limited,
                         tuple(labels[vid])))
    return out


def describe(root: Path, audio_offset: float = 0.0, n_test: int = N_TEST, n_valid: int = N_VALID,
             n_limited: int = N_LIMITED) -> Iterator[Recording]:
    for movie in movies(root, n_test, n_valid, n_limited):
        first = min(a[0] for a in movie.annotations)
        last = max(a[1] for a in movie.annotations)
        if first < audio_offset:
            raise ValueError(f"ava_speech: {movie.video_id} is annotated from {first} s, before "
                             f"audio_offset={audio_offset}")
        yield Recording(
            corpus="ava_speech", path=movie.path, domain="mixed", split=movie.split,
            start=round(first - audio_offset, 6), duration=round(last - first, 6),
            extra={"video_id": movie.video_id, "limited_train": movie.limited_train,
                   "annotations": len(movie.annotations)},
        )


def _evenly(total: int, keep: int) -> Iterator[int]:
    """`keep` of `range(total)` spread evenly, first one included: deterministic, no RNG."""
    keep = min(total, keep)
    return (i * total // keep for i in range(keep))


def windows(root: Path, hop: float = 0.01, length: float = 1.0, max_train_per_class: int = 10_000,
            max_eval: int = 90_000, audio_offset: float = 0.0, n_test: int = N_TEST,
            n_valid: int = N_VALID, n_limited: int = N_LIMITED) -> Iterator[Window]:
    """The probe clips: each annotation cut into `length`-s windows at `hop`, each fully inside it.

    Train movies keep at most `max_train_per_class` windows per class per movie (balanced), valid/test
    movies at most `max_eval` per movie (unbalanced). The kept windows are evenly spaced over the
    movie's candidates in time order, not sampled: the result depends on nothing but the arguments and
    covers each movie uniformly. Output is per movie (sorted by id), in time order.
    """
    if hop <= 0 or length <= 0 or abs(length / hop - round(length / hop)) > 1e-6:
        raise ValueError(f"ava_speech: hop={hop!r}, length={length!r}; expected positive, length a multiple of hop")
    if max_train_per_class < 0 or max_eval < 0:
        raise ValueError(f"ava_speech: {max_train_per_class=}, {max_eval=}; expected >= 0")
    span = round(length / hop)
    for movie in movies(root, n_test, n_valid, n_limited):
        runs = []  # (first tick, count, label) per annotation
        for start, end, label in movie.annotations:
            first, stop = math.ceil(start / hop - 1e-6), math.floor(end / hop + 1e-6)
            if stop - first >= span:
                runs.append((first, stop - first - span + 1, label))
        if runs and runs[0][0] * hop < audio_offset - 1e-6:
            raise ValueError(f"ava_speech: {movie.video_id} is annotated from {runs[0][0] * hop} s, "
                             f"before audio_offset={audio_offset}")
        if movie.split == "train":
            groups = [[r for r in runs if r[2] == c] for c in ("background", "speech")]
            cap = max_train_per_class
        else:
            groups, cap = [runs], max_eval
        ticks: list[tuple[int, str]] = []
        for group in groups:
            offsets = [0]
            for run in group:
                offsets.append(offsets[-1] + run[1])
            for g in _evenly(offsets[-1], cap):
                j = bisect.bisect_right(offsets, g) - 1
                ticks.append((group[j][0] + g - offsets[j], group[j][2]))
        for tick, label in sorted(ticks):
            yield Window(movie.video_id, round(tick * hop - audio_offset, 6),
                         round((tick + span) * hop - audio_offset, 6), label, movie.split,
                         movie.limited_train, movie.path)


CORPUS = Corpus(name="ava_speech", domain="mixed", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, options=("audio_offset", "n_test", "n_valid", "n_limited"), windows=windows)
