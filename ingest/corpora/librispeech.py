"""LibriSpeech: `train-{clean-100,clean-360,other-500}/<spk>/<chap>/<spk>-<chap>-<utt>.flac`.

Only the training parts are used (the paper's "pre-specified training partitions"). One example per
utterance file (not cut). The transcript (`<spk>-<chap>.trans.txt`) goes to `extra["text"]`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

LAYOUT = "LibriSpeech/train-{clean-100,clean-360,other-500}/<spk>/<chap>/<spk>-<chap>-<utt>.flac"
TRAIN_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")


def _transcripts(chapter_dir: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for trans in sorted(chapter_dir.glob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            if utt:
                texts[utt] = text.strip()
    return texts


def describe(root: Path, parts: list[str] | tuple[str, ...] = TRAIN_PARTS) -> Iterator[Recording]:
    present = [p for p in parts if (root / p).is_dir()]
    if not present:
        require(root / parts[0], "librispeech", LAYOUT)
    for part in present:
        for chapter_dir in sorted(d for d in (root / part).glob("*/*") if d.is_dir()):
            texts = _transcripts(chapter_dir)
            for flac in sorted(chapter_dir.glob("*.flac")):
                utt = flac.stem
                yield Recording(
                    corpus="librispeech", path=flac.relative_to(root).as_posix(), domain="speech",
                    split="train", speaker=utt.split("-")[0], subset=part,
                    extra={"text": texts.get(utt, "")},
                )


CORPUS = Corpus(name="librispeech", domain="speech", cut=False, kind="pretrain", layout=LAYOUT,
                describe=describe, top="LibriSpeech", options=("parts",))
