"""Per-diet DALI indexes: DALI's own webdataset reader returns exactly the diet's samples, no copy."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.engine import build_collection
from shards.catalog import read_catalog
from shards.diets import write_diet
from shards.storage import Root
from tests.conftest import small_config


def _dali_keys(tar: str, idx: str) -> list[str]:
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)  # CPU: no GPU needed
    def pipe():
        audio, meta = fn.readers.webdataset(paths=[tar], index_paths=[idx], ext=["wav", "json"], name="r")
        return audio, meta

    p = pipe()
    p.build()
    keys = []
    for _ in range(p.epoch_size("r")):
        _, meta = p.run()
        keys.append(json.loads(bytes(np.array(meta[0])).decode())["key"])
    return keys


def test_diets_select_by_domain_and_dali_reads_only_them(tmp_path, mixed_sources):
    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    catalog = read_catalog(Root(data), "pretrain").to_pylist()
    manifests = {d: write_diet(str(data), d) for d in ("speech", "nonspeech", "all")}
    assert manifests["speech"]["clips"] == 3 and manifests["nonspeech"]["clips"] == 6
    assert manifests["all"]["clips"] == len(catalog) == 9
    for diet, domains in (("speech", {"speech"}), ("nonspeech", {"nonspeech"})):
        for shard in manifests[diet]["shards"]:
            got = _dali_keys(str(data / shard["tar"]), str(data / shard["idx"]))
            want = [r["key"] for r in catalog if r["shard"] == shard["shard"] and r["domain"] in domains]
            assert got == want and len(got) == shard["clips"]
    custom = write_diet(str(data), "just-noise", corpora=["noise"])
    assert custom["per_corpus"] == {"noise": {"clips": 6, "seconds": 39.5}}


def test_default_diets_never_draw_on_transfer_datasets(tmp_path, mixed_sources):
    from ingest.config import Source
    from tests.fixtures import esc50

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    build_collection([Source("esc50", "esc50", str(esc50.build(tmp_path / "esc")))],
                     small_config(data, collection="esc50", clip_seconds=None), purpose="transfer")
    manifest = write_diet(str(data), "nonspeech")
    assert manifest["collections"] == ["pretrain"] and set(manifest["per_corpus"]) == {"noise"}


def test_rank_indexes_let_dalis_reader_read_exactly_each_ranks_share(tmp_path, mixed_sources):
    from shards.diets import load_diet, write_rank_indexes
    from shards.sampler import Sampler

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    write_diet(str(data), "all")
    table = load_diet(str(data), "all")
    catalog = read_catalog(Root(data), "pretrain").to_pylist()
    from shards.shardfile import parse_index

    offsets = {(r["shard"], parse_index(f"v1.2 1\n{r['idx_line']}")[0].members[r["codec"]][0]): r["key"]
               for r in catalog}
    shard_of = {i: t.rsplit("/", 1)[-1][:-4] for i, t in enumerate(table.tars)}
    seen = []
    for rank in range(2):
        sampler = Sampler(len(table), 2, seed=7, rank=rank, world_size=2)
        expected = {offsets[(shard_of[table.tar_id[i]], int(table.offset[i]))] for i in sampler.rank_order(3)}
        got = [k for entry in write_rank_indexes(str(data), "all", sampler, epoch=3)
               for k in _dali_keys(entry["tar"], entry["idx"])]
        assert sorted(got) == sorted(expected) and len(got) == 4
        seen += got
    assert len(set(seen)) == len(seen)  # ranks are disjoint


def test_a_diet_that_takes_a_whole_shard_names_the_shards_own_index(tmp_path, mixed_sources):
    """`all` takes every clip of every shard: its manifest names each shard's own index (no copy written),
    and DALI reads through it exactly the shard's clips; a diet taking part of a shard writes its own."""
    from shards.diets import load_diet

    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    catalog = read_catalog(Root(data), "pretrain").to_pylist()
    manifests = {d: write_diet(str(data), d) for d in ("all", "speech")}
    for shard in manifests["all"]["shards"]:
        assert shard["idx"] == f"shards/pretrain/{shard['shard']}.idx"
        assert _dali_keys(str(data / shard["tar"]), str(data / shard["idx"])) == \
            [r["key"] for r in catalog if r["shard"] == shard["shard"]]
    assert not (data / "shards" / "pretrain" / "diets" / "all").exists()
    mixed = [s for s in manifests["speech"]["shards"] if s["clips"] < sum(r["shard"] == s["shard"] for r in catalog)]
    assert mixed and all(s["idx"].startswith("shards/pretrain/diets/speech/") for s in mixed)
    table = load_diet(str(data), "all")  # read a column at a time: the same clips, in manifest order
    assert len(table) == len(catalog) == 9 and table.frames.tolist() == [r["frames"] for r in catalog]


def test_a_shard_whose_every_clip_was_quarantined_adds_nothing(tmp_path, mixed_sources):
    """Its catalog part is empty (ingest writes it so the shard counts as committed): diets skip it."""
    from shards.catalog import CATALOG_SCHEMA, write_table
    from shards.diets import member_ranges

    offset, size = member_ranges(pa.array([], pa.string()), pa.array([], pa.string()))
    assert offset.tolist() == size.tolist() == []
    data = tmp_path / "d"
    build_collection(mixed_sources, small_config(data))
    catalog = read_catalog(Root(data), "pretrain")
    lost = catalog.filter(pc.equal(catalog.column("shard"), "shard-000001")).num_rows
    write_table(Root(data), "catalog/pretrain/clips/shard-000001.parquet", CATALOG_SCHEMA.empty_table())
    manifest = write_diet(str(data), "all")
    assert lost > 0 and manifest["clips"] == 9 - lost
    assert "shard-000001" not in [s["shard"] for s in manifest["shards"]]
