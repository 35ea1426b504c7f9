"""Records that cross the adapter -> engine boundary.

An adapter only *describes* its corpus: it yields `Recording`s (a file, or a region of one, plus labels).
The engine turns recordings into clips. Keeping these as frozen dataclasses with explicit `to_dict` /
`from_dict` lets them travel to Dask workers and into Parquet without surprises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Mapping

Domain = Literal["speech", "nonspeech", "mixed"]  # "mixed": transfer sets such as AVA-Speech
DOMAINS: tuple[str, ...] = ("speech", "nonspeech", "mixed")


@dataclass(frozen=True, slots=True)
class Recording:
    """One source audio file (or one region of it) as a corpus describes it.

    `path` is relative to the corpus root, POSIX separators: keys are derived from it, so it must be
    stable across machines. `start`/`duration` select a region (seconds) when a dataset defines one
    (e.g. the annotated 15 minutes of an AVA-Speech movie); `duration=None` means "to the end".
    `dedup_group`/`dedup_key` let the engine drop the same sound listed by two corpora (the FSD
    superset): within a group the first record of a `dedup_key` wins; records of a group without a key
    are compared by a hash of their decoded audio.
    """

    corpus: str
    path: str
    domain: Domain
    split: str = "train"
    label: str | None = None
    speaker: str | None = None
    subset: str | None = None
    start: float = 0.0
    duration: float | None = None
    dedup_group: str | None = None
    dedup_key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"Recording {self.path!r}: domain={self.domain!r}, expected one of {DOMAINS}")
        if self.path.startswith("/") or "\\" in self.path:
            raise ValueError(f"Recording path must be relative POSIX under the corpus root, got {self.path!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["extra"] = json.dumps(dict(self.extra), sort_keys=True)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recording":
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        extra = values.get("extra", {})
        values["extra"] = json.loads(extra) if isinstance(extra, str) else dict(extra or {})
        return cls(**values)
