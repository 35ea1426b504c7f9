"""Corpus adapters: one module per corpus, each exposing `CORPUS: Corpus`.

An adapter only reads its corpus's layout and metadata and yields `Recording`s; it never touches audio
samples or sizes pools (the engine does all audio work for every corpus).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping

from ingest.records import Recording

Kind = Literal["pretrain", "transfer", "custom"]

# Table I of the paper, in its order; `cut` marks the corpora sub-sampled into 10-s clips (^).
PRETRAIN = (
    "freefield1010", "wham", "sonyc_ust", "musan", "fsd", "audioset",
    "tedlium", "librispeech", "chime5", "voxceleb", "commonvoice", "ami",
)
TRANSFER = ("esc50", "urbansound8k", "nsynth", "speech_commands", "vctk", "ava_speech")
CUSTOM = ("folder", "csv")


@dataclass(frozen=True, slots=True)
class Corpus:
    """What the engine needs to know about a corpus besides its recordings.

    `top` is the dataset's own top folder (e.g. "LibriSpeech"): if the user's root contains it, the
    root is moved into it, so recording paths (and hence clip keys) are the same whichever of the two
    folders the user points at. `options` names the adapter options a corpus table may set.
    """

    name: str
    domain: str | None  # None: the user says (folder/csv)
    cut: bool  # Table I "^": cut long recordings into non-overlapping 10-s clips
    kind: Kind
    layout: str  # one line shown when the root does not look like this corpus
    describe: Callable[..., Iterator[Recording]]  # describe(root: Path, **options)
    top: str | None = None
    options: tuple[str, ...] = ()
    root_is_file: bool = False  # csv: the root is the metadata file; paths are relative to its folder
    # Datasets whose examples are windows of long recordings (AVA-Speech): windows(root: Path, **options)
    # yields records with path, start, end (seconds of the file), video_id, label, split, limited_train.
    windows: Callable[..., Iterator[Any]] | None = None

    def resolve_root(self, root: str | Path) -> Path:
        root = Path(root)
        if self.root_is_file:
            if not root.is_file():
                raise FileNotFoundError(f"{self.name}: {str(root)!r} is not a file")
            return root
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name}: corpus root {str(root)!r} is not a directory")
        if self.top and (root / self.top).is_dir():
            return root / self.top
        return root

    def base_dir(self, root: str | Path) -> Path:
        """The folder that recording paths are relative to."""
        resolved = self.resolve_root(root)
        return resolved.parent if self.root_is_file else resolved

    def recordings(self, root: str | Path, options: Mapping[str, Any] | None = None) -> Iterator[Recording]:
        return self.describe(self.resolve_root(root), **self._checked(options))

    def windows_of(self, root: str | Path, options: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """The dataset's windows (see `windows`); none for a dataset without them."""
        if self.windows is None:
            return iter(())
        return self.windows(self.resolve_root(root), **self._checked(options))

    def _checked(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"{self.name}: unknown option(s) {unknown}; known: {list(self.options)}")
        return options


def get(name: str) -> Corpus:
    """The adapter for `name` (one of PRETRAIN, TRANSFER, CUSTOM)."""
    if name not in PRETRAIN + TRANSFER + CUSTOM:
        raise ValueError(f"unknown corpus adapter {name!r}; known: {', '.join(PRETRAIN + TRANSFER + CUSTOM)}")
    module = importlib.import_module(f"ingest.corpora.{name}")
    return module.CORPUS
