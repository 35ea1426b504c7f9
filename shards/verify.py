"""Re-read every shard of a data root and check it against what ingest recorded.

Checks, per shard: bytes and sha256 against the shard index; the tar's samples against the catalog part
(same keys, same order, same count); every audio member decodes at 16 kHz to the recorded sample count;
every `<key>.json` equals its catalog row; the `.idx` equals what NVIDIA's own `wds2idx` writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shards import layout
from shards.audio import SAMPLE_RATE, decode_bytes
from shards.catalog import JSON_FIELDS, collections, read_catalog, read_table
from shards.shardfile import parse_index
from shards.storage import Root

log = logging.getLogger(__name__)


@dataclass
class Report:
    shards: int = 0
    clips: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def wds2idx_text(tar_bytes: bytes) -> str:
    """The index NVIDIA's `wds2idx` writes for these tar bytes (run on a temporary local copy)."""
    from wds2idx import IndexCreator

    with tempfile.TemporaryDirectory() as tmp:
        tar_path, idx_path = Path(tmp) / "shard.tar", Path(tmp) / "shard.idx"
        tar_path.write_bytes(tar_bytes)
        with IndexCreator(str(tar_path), str(idx_path), verbose=False) as creator:
            creator.create_index()
        return idx_path.read_text()


def _expected_json(row: dict) -> dict:
    expected = {k: row[k] for k in JSON_FIELDS}
    expected["extra"] = json.loads(row["extra"])
    return expected


def verify_shard(root: Root, collection: str, entry: dict, rows: list[dict]) -> list[str]:
    """Problems found in one shard (empty list: the shard is sound)."""
    where = f"{collection}/{entry['shard']}"
    problems = []
    data = root.read_bytes(entry["path"])
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return [f"{where}: tar bytes/sha256 differ from the shard index (corrupted or replaced)"]
    members: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            key, _, ext = info.name.partition(".")
            if key not in members:
                members[key], _ = {}, order.append(key)
            members[key][ext] = tar.extractfile(info).read()
    if order != [r["key"] for r in rows]:
        problems.append(f"{where}: tar holds {len(order)} clips, catalog lists {len(rows)} (or order differs)")
    if entry["clips"] != len(order):
        problems.append(f"{where}: index says {entry['clips']} clips, tar holds {len(order)}")
    for row in rows:
        sample = members.get(row["key"], {})
        audio_bytes = sample.get(row["codec"])
        if audio_bytes is None or "json" not in sample:
            problems.append(f"{where}: {row['key']} lacks .{row['codec']} or .json")
            continue
        try:
            pcm, rate = decode_bytes(audio_bytes)
        except Exception as err:  # noqa: BLE001 - any decoder failure is a finding, not a crash
            problems.append(f"{where}: {row['key']}.{row['codec']} does not decode ({err})")
            continue
        if rate != SAMPLE_RATE or len(pcm) != row["frames"]:
            problems.append(f"{where}: {row['key']} decodes to {len(pcm)} frames at {rate} Hz, "
                            f"catalog says {row['frames']} at {SAMPLE_RATE}")
        if json.loads(sample["json"]) != _expected_json(row):
            problems.append(f"{where}: {row['key']}.json differs from its catalog row")
    idx_text = root.read_bytes(entry["idx"]).decode()
    if order and idx_text != wds2idx_text(data):
        problems.append(f"{where}: .idx differs from what wds2idx writes for this tar")
    try:
        parse_index(idx_text)  # what our readers (and DALI) must be able to parse
    except ValueError as err:
        problems.append(f"{where}: .idx does not parse ({err})")
    return problems


def verify(data: str, only: list[str] | None = None,
           progress: Callable[[str], None] | None = None) -> Report:
    """Verify every complete collection under `data` (or those in `only`)."""
    root = Root(data)
    report = Report()
    names = only or collections(root)
    if not names:
        report.problems.append(f"{data}: no complete collection (shards/<name>/_COMPLETE.json) found")
    for collection in names:
        if not root.exists(layout.complete_path(collection)):
            report.problems.append(f"{collection}: not complete (no {layout.complete_path(collection)})")
            continue
        index = read_table(root, layout.shard_index_path(collection)).to_pylist()
        by_shard: dict[str, list[dict]] = {}
        for row in read_catalog(root, collection).to_pylist():
            by_shard.setdefault(row["shard"], []).append(row)
        extra = sorted(set(by_shard) - {e["shard"] for e in index})
        if extra:
            report.problems.append(f"{collection}: catalog parts for shards missing from the index: {extra}")
        for entry in index:
            try:
                report.problems += verify_shard(root, collection, entry, by_shard.get(entry["shard"], []))
            except FileNotFoundError as err:
                report.problems.append(f"{collection}/{entry['shard']}: missing file ({err})")
            report.shards += 1
            report.clips += entry["clips"]
            if progress:
                progress(entry["shard"])
    return report
