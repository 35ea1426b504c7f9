"""TED-LIUM 3 + mTEDx (Table I "TED-LIUM ^ &"): whole talks, cut into 10-s clips by the engine.

The root is the folder that *holds* `TEDLIUM_release-3/` and, optionally, `mtedx/` (one `<src>-<tgt>/`
folder per downloaded mTEDx archive, as each `mtedx_<src>-<tgt>.tgz` unpacks). Paths keep both top
folders so the two corpora cannot collide; pointing the root at `TEDLIUM_release-3` itself is an error.

- TED-LIUM 3: `TEDLIUM_release-3/data/sph/<talk>.sph` are the 2,351 training talks (the legacy dev/test
  talks live under `legacy/{dev,test}` and are not read). The speaker comes from the talk's
  `data/stm/<talk>.stm` (`<talk> <channel> <speaker> <start> <end> <label> <text>`), skipping the
  `ignore_time_segment_in_scoring` filler rows, whose speaker field is not a person.
- mTEDx: only the ASR pairs (`src == tgt`, e.g. `es-es`) by default: the translation pairs (`es-en`)
  re-package audio of the same talks, so reading them would count those talks twice. One record per
  `data/train/wav/<talk-id>.flac`; the talk id is the speaker (one presenter per talk, as lhotse does).
  Option `mtedx_pairs` names the pair folders to read instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterator, Sequence

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = ("<root>/TEDLIUM_release-3/data/{sph,stm}/<talk>.* "
          "[+ <root>/mtedx/<src>-<tgt>/data/train/wav/<talk-id>.flac]")
TEDLIUM = "TEDLIUM_release-3"
MTEDX = "mtedx"
_PAIR = re.compile(r"^[a-z]{2}-[a-z]{2}$")
_FILLER = "ignore_time_segment_in_scoring"


def _stm_speaker(stm: Path) -> str | None:
    """The speaker of the first real segment of a talk's STM file (None if it has none)."""
    for line in stm.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(maxsplit=6)
        if len(fields) < 6 or line.startswith(";;"):
            continue
        text = fields[6].strip() if len(fields) > 6 else ""
        if text != _FILLER:
            return fields[2]
    return None


def _tedlium3(root: Path) -> Iterator[Recording]:
    sph_dir = require(root / TEDLIUM / "data" / "sph", "tedlium", LAYOUT)
    stm_dir = root / TEDLIUM / "data" / "stm"
    no_speaker = 0
    for sph in sorted(sph_dir.glob("*.sph")):
        stm = stm_dir / f"{sph.stem}.stm"
        speaker = _stm_speaker(stm) if stm.is_file() else None
        no_speaker += speaker is None
        yield Recording(corpus="tedlium", path=sph.relative_to(root).as_posix(), domain="speech",
                        split="train", speaker=speaker, subset="tedlium3", extra={"language": "en"})
    if no_speaker:
        log.warning("tedlium: %d talk(s) under %s have no usable STM speaker; speaker left empty",
                    no_speaker, sph_dir)


def _pairs(root: Path, mtedx_pairs: Sequence[str] | None) -> list[str]:
    if mtedx_pairs is None:
        folder = root / MTEDX
        found = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
        return [p for p in found if _PAIR.match(p) and p[:2] == p[3:]]
    if not isinstance(mtedx_pairs, (list, tuple)) or not all(isinstance(p, str) for p in mtedx_pairs):
        raise ValueError(f"tedlium: mtedx_pairs must be a list of '<src>-<tgt>' names, got {mtedx_pairs!r}")
    bad = [p for p in mtedx_pairs if not _PAIR.match(p)]
    if bad:
        raise ValueError(f"tedlium: mtedx_pairs {bad} are not '<src>-<tgt>' names such as 'es-es'")
    return sorted(set(mtedx_pairs))


def _mtedx(root: Path, pair: str) -> Iterator[Recording]:
    wav_dir = require(root / MTEDX / pair / "data" / "train" / "wav", "tedlium", LAYOUT)
    src = pair[:2]
    for flac in sorted(wav_dir.glob("*.flac")):
        yield Recording(corpus="tedlium", path=flac.relative_to(root).as_posix(), domain="speech",
                        split="train", speaker=flac.stem, subset=f"mtedx-{src}",
                        extra={"language": src, "pair": pair})


def describe(root: Path, mtedx_pairs: Sequence[str] | None = None) -> Iterator[Recording]:
    """TED-LIUM 3 training talks, then the chosen mTEDx pairs' training talks, each sorted by path."""
    pairs = _pairs(root, mtedx_pairs)  # validate options before yielding anything
    yield from _tedlium3(root)
    for pair in pairs:
        yield from _mtedx(root, pair)


CORPUS = Corpus(name="tedlium", domain="speech", cut=True, kind="pretrain", layout=LAYOUT,
                describe=describe, top=None, options=("mtedx_pairs",))
