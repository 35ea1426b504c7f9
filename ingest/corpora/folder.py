"""A user's own corpus: every audio file under a folder, one recording each, all in the training split.

Nothing about the folder is known, so the user must say which domain it is (`domain="speech"` or
`"nonspeech"`) - a diet is built from domains, and guessing would silently mislabel it. Hidden files
and folders (`.*`) and `__MACOSX/` are skipped: they are archive debris (AppleDouble `._x.wav` files are
not audio). The engine cuts long files into non-overlapping 10-s clips (as the paper's long corpora),
unless the user keeps them whole (`cut = false`); that is the engine's work, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.corpora import Corpus
from ingest.corpora._util import AUDIO_EXTENSIONS, audio_files, rel
from ingest.records import Recording

LAYOUT = f"any folder of audio files ({', '.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)}), searched recursively"
DOMAINS = ("speech", "nonspeech")


def describe(root: Path, domain: str | None = None) -> Iterator[Recording]:
    if domain not in DOMAINS:
        raise ValueError(f"folder: domain={domain!r}; say which the folder holds, one of {list(DOMAINS)}")
    found = False
    for path in audio_files(root):
        relative = rel(path, root)
        if any(part.startswith(".") or part == "__MACOSX" for part in Path(relative).parts):
            continue
        found = True
        yield Recording(corpus="folder", path=relative, domain=domain, split="train")
    if not found:
        raise FileNotFoundError(f"folder: no audio files under {str(root)!r} (layout: {LAYOUT})")


CORPUS = Corpus(name="folder", domain=None, cut=True, kind="custom", layout=LAYOUT, describe=describe,
                options=("domain",))
