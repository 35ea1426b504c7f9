"""`python -m analysis report`: the store's results as `DATA/reports/<name>/` (analysis.report renders).

Every number comes from a committed store table; the provenance section names each model's id and
fingerprint (from its embeddings' lineage) and every store file read, with the code version.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from analysis.report import Report, write_report
from featurestore import tables
from featurestore.tables import Root

log = logging.getLogger(__name__)

RESULT_TABLES = ("probes", "probe_summary", "probe_pairs", "rsa", "rsa_models", "rsa_summary", "tsne")


def _table(root: Root, name: str, read: list[str]) -> pa.Table | None:
    if not tables.partitions(root, name):
        return None
    read += tables.files(root, name)
    return tables.read(root, name)


def _provenance(root: Root, read: list[str]) -> dict[str, dict]:
    """Per model: its id, its fingerprint per dataset (see ModelProvenance), the embedding files read."""
    out: dict[str, dict] = {}
    for part in tables.partitions(root, "embeddings"):
        lineage = tables.manifest(root, "embeddings", part)["lineage"]
        entry = out.setdefault(part["model"], {"id": lineage["model_id"], "shas": {}, "files": []})
        if entry["id"] != lineage["model_id"]:
            raise ValueError(f"model {part['model']!r} names two model ids ({entry['id']}, {lineage['model_id']}): "
                             "re-embed with --replace")
        entry["shas"][part["dataset"]] = lineage["model_sha"]
        entry["files"] += tables.files(root, "embeddings", **part)
    return out


def report(data: str, name: str = "study", banner: str | None = None) -> list[str]:
    """Write the report of what the store holds; returns the URLs written (report.html last)."""
    root = Root(data)
    read: list[str] = []
    found = {t: _table(root, t, read) for t in RESULT_TABLES}
    if all(v is None for v in found.values()):
        raise ValueError(f"{root.url}: the store holds no results yet (run `python -m analysis probe` and `rsa`)")
    provenance = _provenance(root, read)
    meta = tables.lineage()
    inputs = Report(code_version=meta["code_version"], created=meta["created"], provenance=provenance,
                    store_files=tuple(read), banner=banner, name=name, **found)
    folder = tables.report_dir(name)
    written: list[str] = []

    def write(file: str, data_: bytes) -> None:
        root.write_bytes(f"{folder}/{file}", data_)
        written.append(root.url_of(f"{folder}/{file}"))

    write_report(root.url_of(folder), inputs, write)
    return written
