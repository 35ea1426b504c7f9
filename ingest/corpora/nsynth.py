"""NSynth: `nsynth-{train,valid,test}/examples.json` + `audio/<note_str>.wav` (16 kHz, 4 s).

The study probes the instrument family (11 classes) on the official train/valid/test partitions (SPEC §3),
so a requested partition that is absent is an error, not an empty split. `examples.json` maps each
`note_str` to its annotation; pitch and velocity go to `extra` for the pitch-coloured t-SNE and the
pitch descriptors of the RSA (SPEC §4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ingest.corpora import Corpus
from ingest.corpora._util import require
from ingest.records import Recording

LAYOUT = "nsynth-{train,valid,test}/{examples.json, audio/<note_str>.wav}"
SPLITS = ("train", "valid", "test")


def describe(root: Path, splits: list[str] | tuple[str, ...] = SPLITS) -> Iterator[Recording]:
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"nsynth: unknown split(s) {unknown}; expected a subset of {list(SPLITS)}")
    for split in [s for s in SPLITS if s in splits]:
        part = f"nsynth-{split}"
        meta = require(root / part / "examples.json", "nsynth", LAYOUT)
        examples = json.loads(meta.read_text(encoding="utf-8"))
        for note, fields in sorted(examples.items()):
            yield Recording(
                corpus="nsynth", path=f"{part}/audio/{note}.wav", domain="nonspeech", split=split,
                label=fields["instrument_family_str"], subset=part,
                extra={"pitch": int(fields["pitch"]), "velocity": int(fields["velocity"]),
                       "instrument_source_str": fields["instrument_source_str"],
                       "instrument_str": fields.get("instrument_str"),
                       "qualities_str": list(fields.get("qualities_str", []))},
            )


CORPUS = Corpus(name="nsynth", domain="nonspeech", cut=False, kind="transfer", layout=LAYOUT,
                describe=describe, options=("splits",))
