"""Small helpers every adapter uses: finding files, reading metadata, failing with one clear line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".sph", ".m4a", ".aac")


def require(path: Path, corpus: str, layout: str) -> Path:
    """`path` must exist, else one line saying which corpus expected what."""
    if not path.exists():
        raise FileNotFoundError(f"{corpus}: expected {str(path)!r} (layout: {layout})")
    return path


def audio_files(directory: Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> Iterator[Path]:
    """Audio files under `directory`, recursively, sorted (deterministic plans need sorted listings)."""
    wanted = tuple(e.lower() for e in extensions)
    yield from sorted(p for p in directory.rglob("*") if p.suffix.lower() in wanted and not p.is_dir())


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_csv(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    """Rows of a headed CSV/TSV by column name (newer releases add columns: read by name)."""
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f, delimiter=delimiter, skipinitialspace=True)
