"""`python -m shards verify` finds every kind of damage and says where, with a non-zero exit."""

import json

from ingest.engine import build_collection
from shards.__main__ import main as shards_main
from tests.conftest import small_config


def _build(tmp_path, sources):
    data = tmp_path / "d"
    build_collection(sources, small_config(data))
    return data, data / "shards" / "pretrain"


def test_sound_collection_verifies(tmp_path, mixed_sources, capsys):
    data, _ = _build(tmp_path, mixed_sources)
    assert shards_main(["verify", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_flipped_byte_in_a_tar_is_found(tmp_path, mixed_sources, capsys):
    data, shards = _build(tmp_path, mixed_sources)
    tar = shards / "shard-000000.tar"
    raw = bytearray(tar.read_bytes())
    raw[4000] ^= 0xFF
    tar.write_bytes(bytes(raw))
    assert shards_main(["verify", str(data)]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems == ["pretrain/shard-000000: tar bytes/sha256 differ from the shard index (corrupted or replaced)"]


def test_edited_index_is_found(tmp_path, mixed_sources, capsys):
    data, shards = _build(tmp_path, mixed_sources)
    idx = shards / "shard-000001.idx"
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join(lines[:-1]).replace(f"v1.2 {len(lines) - 1}", f"v1.2 {len(lines) - 2}") + "\n")
    assert shards_main(["verify", str(data)]) == 1
    assert "shard-000001: .idx differs from what wds2idx writes" in capsys.readouterr().out


def test_catalog_disagreement_and_incomplete_collection_are_found(tmp_path, mixed_sources, capsys):
    data, shards = _build(tmp_path, mixed_sources)
    part = data / "catalog" / "pretrain" / "clips" / "shard-000000.parquet"
    import pyarrow.parquet as pq
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # one clip missing from the catalog
    assert shards_main(["verify", str(data)]) == 1
    assert "shard-000000: tar holds" in capsys.readouterr().out
    (shards / "_COMPLETE.json").unlink()
    assert shards_main(["verify", str(data), "--collection", "pretrain"]) == 1
    assert "not complete" in capsys.readouterr().out
    assert shards_main(["verify", str(tmp_path / "empty")]) == 1
