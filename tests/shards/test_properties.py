"""Properties over many generated inputs: the DALI index round trip, its vectorised parse, the sampler's
partition across world sizes and loader workers, and that our streamed-header index equals wds2idx."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from shards.diets import index_bytes, member_ranges
from shards.sampler import Sampler
from shards.shardfile import TarWriter, index_text, parse_index
from shards.verify import index_lines, wds2idx_text

KEYS = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=40)
MEMBER = st.tuples(st.sampled_from(["wav", "flac"]), st.integers(0, 2**40), st.integers(0, 2**31))


@st.composite
def entries(draw) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    keys = draw(st.lists(KEYS, max_size=30, unique=True))
    out = []
    for key in keys:
        codec, offset, size = draw(MEMBER)
        out.append((key, {"json": (draw(st.integers(0, 2**40)), draw(st.integers(0, 10**6))), codec: (offset, size)}))
    return out


def _line(key: str, members: dict[str, tuple[int, int]]) -> str:
    return " ".join(f"{ext} {o} {s} {key}.{ext}" for ext, (o, s) in sorted(members.items()))


@settings(deadline=None)
@given(entries())
def test_index_text_and_parse_index_round_trip(clips):
    text = index_text(_line(k, m) for k, m in clips)
    parsed = parse_index(text)
    assert [(e.key, e.members) for e in parsed] == clips
    assert index_bytes(pa.chunked_array([pa.array([_line(k, m) for k, m in clips], pa.string())])) == text.encode()


@settings(deadline=None)
@given(entries().filter(bool))
def test_member_ranges_parse_what_parse_index_parses(clips):
    lines = pa.array([_line(k, m) for k, m in clips], pa.string())
    codecs = pa.array([next(e for e in m if e != "json") for _, m in clips], pa.string())
    offset, size = member_ranges(lines, codecs)
    parsed = parse_index(index_text(lines.to_pylist()))
    assert offset.tolist() == [e.members[c][0] for e, c in zip(parsed, codecs.to_pylist())]
    assert size.tolist() == [e.members[c][1] for e, c in zip(parsed, codecs.to_pylist())]


@settings(deadline=None)
@given(st.integers(1, 3000), st.integers(1, 64), st.integers(1, 8), st.integers(1, 4), st.integers(0, 2**32),
       st.integers(0, 1000))
def test_sampler_partition_is_disjoint_complete_and_equal(n, batch, world, workers, seed, epoch):
    if n // world // batch == 0:
        return
    ranks = [Sampler(n, batch, seed=seed, rank=r, world_size=world) for r in range(world)]
    orders = []
    for s in ranks:
        dealt = [list(s.batches(_state(epoch), w, workers)) for w in range(workers)]
        numbers = sorted(b for d in dealt for b, _ in d)
        assert numbers == list(range(s.batches_per_epoch()))  # every batch once, over the workers
        by_number = dict(pair for d in dealt for pair in ((b, ix) for b, ix in d))
        order = np.concatenate([by_number[b] for b in numbers])
        assert np.array_equal(order, s.rank_order(epoch))
        orders.append(order)
    assert len({len(o) for o in orders}) == 1  # equal per rank
    together = np.concatenate(orders)
    assert len(np.unique(together)) == len(together)  # disjoint
    assert len(together) == n // world // batch * batch * world  # complete up to the dropped remainder


def _state(epoch: int):
    from shards.sampler import LoaderState

    return LoaderState(epoch=epoch)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(KEYS, st.integers(0, 3000), st.integers(0, 700)), min_size=1, max_size=12,
                unique_by=lambda t: t[0]))
def test_the_index_derived_from_streamed_headers_equals_wds2idx(tmp_path_factory, clips):
    path = tmp_path_factory.mktemp("wds") / "shard.tar"
    with open(path, "wb") as out:
        writer = TarWriter(out)
        for key, wav, js in clips:
            writer.write(key, {"wav": bytes(wav), "json": bytes(js)})
        writer.close()
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r|") as tar:
        members = [(i.name, i.offset_data, i.size) for i in tar if i.isreg()]
    derived = index_text(line for _, line in index_lines(iter(members)))
    assert derived == wds2idx_text(str(path)) == writer.index_text()
