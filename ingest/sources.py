"""Corpus configs: a TOML file (`[settings]` + one `[corpora.<name>]` table each) or CLI `NAME=ADAPTER:PATH`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ingest import corpora
from ingest.config import Source
from ingest.keys import check_name

SOURCE_KEYS = {"adapter", "root", "domain", "options", "enabled", "cut"}
DEFAULT_CONFIG = Path(__file__).with_name("corpora.toml")


def load_config(path: str | Path) -> tuple[dict[str, Any], list[Source]]:
    """(settings table, enabled sources) from a TOML file; relative roots resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpora config {str(path)!r} not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - {"settings", "corpora"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected [settings] and [corpora.<name>]")
    sources = []
    for name, table in data.get("corpora", {}).items():
        bad = sorted(set(table) - SOURCE_KEYS)
        if bad:
            raise ValueError(f"{path}: [corpora.{name}] has unknown key(s) {bad}; known: {sorted(SOURCE_KEYS)}")
        if not table.get("enabled", True):
            continue
        if "root" not in table:
            raise ValueError(f"{path}: [corpora.{name}] needs root = \"<folder>\"")
        root = Path(table["root"]).expanduser()
        root = root if root.is_absolute() else (path.parent / root)
        sources.append(_source(name, table.get("adapter", name), str(root), table.get("domain"),
                               table.get("options", {}), table.get("cut")))
    return dict(data.get("settings", {})), sources


def parse_cli_source(spec: str, domain: str | None = None, cut: bool | None = None) -> Source:
    """`NAME=ADAPTER:PATH` (e.g. `mine=folder:/data/mine`, `esc50=esc50:/data/ESC-50-master`)."""
    name, sep, rest = spec.partition("=")
    adapter, sep2, root = rest.partition(":")
    if not sep or not sep2 or not name or not root:
        raise ValueError(f"--corpus/--dataset {spec!r}: expected NAME=ADAPTER:PATH (e.g. mine=folder:/data/mine)")
    return _source(name, adapter, root, domain, {}, cut)


def keep_whole(sources: list[Source], names: list[str]) -> list[Source]:
    """`sources` with the named folder/csv corpora kept whole (`--keep-whole NAME`)."""
    unknown = sorted(set(names) - {s.name for s in sources})
    if unknown:
        raise ValueError(f"--keep-whole {unknown}: no such corpus; corpora: {[s.name for s in sources]}")
    return [_source(s.name, s.adapter, s.root, s.domain, s.options, False) if s.name in names else s
            for s in sources]


def _source(name: str, adapter: str, root: str, domain: str | None, options: dict,
            cut: bool | None = None) -> Source:
    check_name(name)
    spec = corpora.get(adapter)  # raises on an unknown adapter, listing the known ones
    if "://" not in root:
        root = str(Path(root).expanduser().absolute())  # the same corpus from any working directory
    if spec.kind == "custom":
        domain = domain or ("mixed" if adapter == "csv" else None)
        if adapter == "folder" and domain not in ("speech", "nonspeech"):
            raise ValueError(f"{name}: a folder corpus needs --domain speech|nonspeech")
    elif domain is not None:
        raise ValueError(f"{name}: domain is fixed by the {adapter} adapter ({spec.domain}); remove it")
    if cut is not None:
        if not isinstance(cut, bool):
            raise ValueError(f"{name}: cut={cut!r}, expected true or false")
        if spec.kind != "custom":
            raise ValueError(f"{name}: cutting of {adapter} is fixed by Table I; cut applies to folder/csv corpora")
    if not isinstance(options, dict):
        raise ValueError(f"{name}: options={options!r}, expected a table (options = {{key = value}})")
    return Source(name=name, adapter=adapter, root=root, domain=domain, options=dict(options), cut=cut)
