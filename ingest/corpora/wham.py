"""WHAM! noise (48 kHz, 2-channel): `wham_noise/{tr,cv,tt}/*.wav` + `wham_noise/metadata/noise_meta_*.csv`.

Only the training partition `tr/` is used (the paper's "pre-specified training partitions"); `cv/` and
`tt/` are never listed. Files run 3-48 s, so the engine cuts them into 10-s clips (Table I "^").
`metadata/noise_meta_tr.csv` is optional; when present, its per-file recording facts (noise band, source
recording, location, reverberation) go to `extra` so users can balance or audit by location. Its
columns are `utterance_id, Noise Band, File ID, L to R Width (cm), Reverberation Level, Location ID,
Location Day ID`; values are kept as written (strings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.corpora import Corpus
from ingest.corpora._util import audio_files, read_csv, rel, require
from ingest.records import Recording

LAYOUT = "wham_noise/tr/*.wav (2-ch, 48 kHz; optional wham_noise/metadata/noise_meta_tr.csv)"
PARTITION = "tr"
# noise_meta column -> extra key
META_COLUMNS = {
    "Noise Band": "noise_band",
    "File ID": "file_id",
    "L to R Width (cm)": "l_to_r_width",
    "Reverberation Level": "reverberation",
    "Location ID": "location_id",
    "Location Day ID": "location_day_id",
}


def _noise_meta(root: Path) -> dict[str, dict[str, str]]:
    path = root / "metadata" / f"noise_meta_{PARTITION}.csv"
    if not path.is_file():
        return {}
    meta: dict[str, dict[str, str]] = {}
    for row in read_csv(path):
        name = (row.get("utterance_id") or "").strip()
        if name:
            meta[name] = {key: (row.get(col) or "").strip() for col, key in META_COLUMNS.items() if col in row}
    return meta


def describe(root: Path) -> Iterator[Recording]:
    """Every `tr/*.wav`, with its noise_meta row (if any) in `extra`."""
    train_dir = require(root / PARTITION, "wham", LAYOUT)
    meta = _noise_meta(root)
    for wav in audio_files(train_dir, (".wav",)):
        extra = meta.get(wav.name) or meta.get(wav.stem) or {}
        yield Recording(corpus="wham", path=rel(wav, root), domain="nonspeech", split="train",
                        subset=PARTITION, extra=dict(extra))


CORPUS = Corpus(name="wham", domain="nonspeech", cut=True, kind="pretrain", layout=LAYOUT,
                describe=describe, top="wham_noise")
