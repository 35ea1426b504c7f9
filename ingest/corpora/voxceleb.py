"""VoxCeleb 1 and/or 2 (Table I "VoxCeleb"): one example per utterance file, not cut.

The root holds `wav/` (VoxCeleb1, `wav/id?????/<ytid>/?????.wav`) and/or VoxCeleb2's
`aac/id?????/<ytid>/?????.m4a` (the dev archive unpacks to `dev/aac/`, the test archive to `aac/`; both
are read, paths keep the folder), plus the metadata files if downloaded beside them:
- `iden_split.txt` (`<1|2|3> <id>/<ytid>/<utt>.wav`): when present only set 1 (train) is kept, since the
  paper used training partitions only; without it every VoxCeleb1 file is used.
- `vox1_meta.csv` (tab-separated: id, VGGFace id, gender, nationality, set) -> extra gender/nationality.
- `vox2_meta.csv` (`VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set`): when present only `dev` speakers are kept
  (the `aac/` folder of the test archive would otherwise mix test speakers in) and gender goes to extra.
The speaker is the `id?????` folder. Option `subsets` (default: those present) picks "vox1"/"vox2".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

log = logging.getLogger(__name__)

LAYOUT = "wav/id?????/<ytid>/?????.wav (VoxCeleb1) and/or [dev/]aac/id?????/<ytid>/?????.m4a (VoxCeleb2)"
SUBSETS = {"vox1": ("wav",), "vox2": ("dev/aac", "aac")}  # folders, as each release archive unpacks


def _meta(path: Path, delimiter: str) -> dict[str, list[str]]:
    """Speaker id -> the row's remaining fields (positional: header names differ between releases)."""
    if not path.is_file():
        return {}
    rows = path.read_text(encoding="utf-8-sig").splitlines()[1:]
    fields = ([f.strip() for f in row.split(delimiter)] for row in rows if row.strip())
    return {f[0]: f[1:] for f in fields}


def _iden_train(root: Path) -> set[str] | None:
    """Relative paths (`id/ytid/utt.wav`) of identification set 1 (train), or None without the file."""
    split = root / "iden_split.txt"
    if not split.is_file():
        return None
    pairs = (line.split() for line in split.read_text(encoding="utf-8").splitlines())
    return {p[1] for p in pairs if len(p) == 2 and p[0] == "1"}


def _subsets(root: Path, subsets: Sequence[str] | None) -> list[str]:
    if subsets is None:
        present = [s for s, folders in SUBSETS.items() if any((root / f).is_dir() for f in folders)]
        if not present:
            require(root / "wav", "voxceleb", LAYOUT)
        return present
    known = isinstance(subsets, (list, tuple)) and all(isinstance(s, str) and s in SUBSETS for s in subsets)
    if not known or not subsets:
        raise ValueError(f"voxceleb: subsets must be a non-empty list from {sorted(SUBSETS)}, "
                         f"got {subsets!r}")
    for s in subsets:
        if not any((root / f).is_dir() for f in SUBSETS[s]):
            require(root / SUBSETS[s][-1], "voxceleb", LAYOUT)
    return sorted(set(subsets))


def _vox1(root: Path) -> Iterator[Recording]:
    meta, train = _meta(root / "vox1_meta.csv", "\t"), _iden_train(root)
    excluded = kept = 0
    for wav in sorted((root / "wav").glob("id*/*/*.wav")):
        utt = wav.relative_to(root / "wav").as_posix()
        if train is not None and utt not in train:
            excluded += 1
            continue
        speaker = wav.parent.parent.name
        row = meta.get(speaker, [])
        extra = {"gender": row[1], "nationality": row[2]} if len(row) >= 3 else {}
        kept += 1
        yield Recording(corpus="voxceleb", path=f"wav/{utt}", domain="speech", split="train",
                        speaker=speaker, subset="vox1", extra=extra)
    if excluded:
        log.info("voxceleb: skipped %d VoxCeleb1 file(s) not in iden_split.txt set 1 (train)", excluded)
    if train is not None and kept < len(train):
        log.warning("voxceleb: %d file(s) of iden_split.txt set 1 are missing under %s",
                    len(train) - kept, root / "wav")


def _vox2(root: Path) -> Iterator[Recording]:
    meta = _meta(root / "vox2_meta.csv", ",")
    excluded = 0
    for m4a in sorted(m for folder in SUBSETS["vox2"] for m in (root / folder).glob("id*/*/*.m4a")):
        speaker = m4a.parent.parent.name
        row = meta.get(speaker)
        if meta and (row is None or len(row) < 3 or row[2] != "dev"):
            excluded += 1
            continue
        yield Recording(corpus="voxceleb", path=m4a.relative_to(root).as_posix(), domain="speech",
                        split="train", speaker=speaker, subset="vox2",
                        extra={"gender": row[1]} if row else {})
    if excluded:
        log.info("voxceleb: skipped %d VoxCeleb2 file(s) whose speaker vox2_meta.csv does not put in dev",
                 excluded)


def describe(root: Path, subsets: Sequence[str] | None = None) -> Iterator[Recording]:
    """VoxCeleb1 training utterances, then VoxCeleb2 dev utterances, each sorted by path."""
    for subset in _subsets(root, subsets):
        yield from (_vox1 if subset == "vox1" else _vox2)(root)


CORPUS = Corpus(name="voxceleb", domain="speech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe, top=None, options=("subsets",))
