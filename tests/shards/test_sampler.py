import numpy as np
import pytest

from shards.sampler import LoaderState, Sampler, crop_starts


def test_order_is_a_function_of_seed_and_epoch():
    s = Sampler(1000, 10, seed=3)
    assert np.array_equal(s.rank_order(0), Sampler(1000, 10, seed=3).rank_order(0))
    assert not np.array_equal(s.rank_order(0), s.rank_order(1))
    assert not np.array_equal(s.rank_order(0), Sampler(1000, 10, seed=4).rank_order(0))


def test_ranks_partition_samples_with_equal_batches_and_no_repeats():
    ranks = [Sampler(1003, 8, seed=1, rank=r, world_size=4) for r in range(4)]
    orders = [r.rank_order(5) for r in ranks]
    assert {len(o) for o in orders} == {1003 // 4 // 8 * 8} and {r.batches_per_epoch() for r in ranks} == {31}
    together = np.concatenate(orders)
    assert len(np.unique(together)) == len(together)  # remainder dropped, never repeated


def test_workers_deal_batches_round_robin_and_together_give_the_rank_order():
    s = Sampler(200, 7, seed=0)
    single = [b for b, _ in s.batches()]
    per_worker = [list(s.batches(worker=w, num_workers=3)) for w in range(3)]
    dealt = [per_worker[i % 3][i // 3] for i in range(len(single))]
    assert [b for b, _ in dealt] == single
    assert np.array_equal(np.concatenate([ix for _, ix in dealt]), s.rank_order(0))


def test_resume_neither_replays_nor_skips():
    s = Sampler(500, 16, seed=9)
    full = list(s.batches(LoaderState(epoch=2)))
    resumed = list(s.batches(LoaderState.from_dict(LoaderState(epoch=2, batch=11).to_dict())))
    assert [b for b, _ in resumed] == list(range(11, len(full)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(full[11:], resumed))


def test_crop_starts_stay_inside_and_short_samples_start_at_zero():
    samples = np.array([160000, 15200, 8000, 15201])
    starts = crop_starts(samples, np.array([0.999999, 0.5, 0.7, 0.99]), 15200)
    assert starts.tolist() == [144800, 0, 0, 1]


def test_impossible_batch_is_refused():
    with pytest.raises(ValueError, match="cannot give one batch"):
        Sampler(10, 8, world_size=2)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_batch_k_is_global_batch_k_dealt_over_ranks(world):
    """What makes elastic resume exact: the loader position (epoch, k) names the same global batches on any
    number of ranks, so a run resumed on more or fewer ranks neither replays nor skips a clip."""
    global_batch, clips = 8, 53
    order = np.random.default_rng([42, 3]).permutation(clips)
    for rank in range(world):
        sampler = Sampler(clips, global_batch // world, seed=42, rank=rank, world_size=world)
        assert sampler.batches_per_epoch() == clips // global_batch
        for k, indices in sampler.batches(LoaderState(epoch=3, batch=2)):
            assert list(indices) == list(order[k * global_batch:(k + 1) * global_batch][rank::world])
