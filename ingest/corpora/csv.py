"""A user's labelled dataset: a CSV with columns `path,label,split[,extra...]`.

The root is the CSV file itself; `path`s are relative to its folder (`Corpus.base_dir`), so the dataset
can move as a whole. `split` must be train, valid or test; every other column goes to `extra`. A
labelled dataset is a contract with the user, so a bad row is an error naming its row, never skipped:
an unknown split or a bad path raises ValueError, a missing file FileNotFoundError. Given to `ingest
shards` (pre-training), long files are cut into 10-s clips unless `cut = false`, and only `train` rows are
used; `ingest transfer` never cuts and keeps every split.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ingest.corpora import Corpus
from ingest.records import DOMAINS, Recording

LAYOUT = "<name>.csv with header path,label,split[,extra...]; paths relative to the CSV's folder"
REQUIRED = ("path", "label", "split")
SPLITS = ("train", "valid", "test")


def _path(value: str | None, where: str) -> str:
    """A relative POSIX path that stays inside the CSV's folder."""
    if not value or "\\" in value:
        raise ValueError(f"csv: {where}: path={value!r}; expected a relative path with '/' separators")
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"csv: {where}: path={value!r} must stay inside the CSV's folder")
    return pure.as_posix()


def describe(root: Path, domain: str | None = "mixed") -> Iterator[Recording]:
    domain = domain or "mixed"  # None: the user gave no domain (the engine passes its Source.domain)
    if domain not in DOMAINS:
        raise ValueError(f"csv: domain={domain!r}, expected one of {list(DOMAINS)}")
    base = root.parent
    records: dict[str, Recording] = {}
    with open(root, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"csv: {str(root)!r} lacks column(s) {missing}; header must start {','.join(REQUIRED)}")
        for number, row in enumerate(reader, start=1):
            where = f"{str(root)!r} row {number} (line {reader.line_num})"
            if None in row or None in row.values():
                raise ValueError(f"csv: {where}: {len(reader.fieldnames or [])} columns expected")
            path = _path(row["path"], where)
            if row["split"] not in SPLITS:
                raise ValueError(f"csv: {where}: split={row['split']!r}, expected one of {list(SPLITS)}")
            if not (base / path).is_file():
                raise FileNotFoundError(f"csv: {where}: {str(base / path)!r} does not exist")
            if path in records:
                raise ValueError(f"csv: {where}: path={path!r} is listed twice")
            extra = {k: v for k, v in row.items() if k not in REQUIRED}
            records[path] = Recording(corpus="csv", path=path, domain=domain, split=row["split"],
                                      label=row["label"] or None, extra=extra)
    yield from (records[p] for p in sorted(records))


CORPUS = Corpus(name="csv", domain=None, cut=True, kind="custom", layout=LAYOUT, describe=describe,
                options=("domain",), root_is_file=True)
