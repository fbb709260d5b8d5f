"""The windowed block shuffle against its definition, and the dataset's window-by-window reader
(and per-rank reader) against the simple reference: whole global batches from the whole order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossrank.data.epoch_batches as batches_module
from crossrank.data import (
    EncodedDataset,
    FeatureEncoder,
    TableSchema,
    encode_to_cache,
    make_synthetic_clicks,
)
from crossrank.data.order import EpochOrder
from crossrank.distributed import shard_batches

# (rows, block_rows, window_blocks): one window, several, a short last block, a last window of
# one short block, blocks of one row
SHAPES = [(0, 4, 3), (1, 4, 3), (12, 4, 3), (13, 4, 3), (50, 4, 3), (49, 4, 3), (37, 5, 2),
          (25, 4, 3), (30, 1, 7)]


def _naive_order(n: int, seed: int, block_rows: int, window_blocks: int) -> list[list[int]]:
    """The rows of each window (as sorted lists), straight from the definition."""
    if n <= block_rows * window_blocks:
        return [sorted(range(n))] if n else []
    blocks = np.random.default_rng(seed).permutation(-(-n // block_rows)).tolist()
    windows = []
    for k in range(0, len(blocks), window_blocks):
        rows = [r for b in blocks[k:k + window_blocks]
                for r in range(b * block_rows, min((b + 1) * block_rows, n))]
        windows.append(sorted(rows))
    return windows


@pytest.mark.parametrize("n,block_rows,window_blocks", SHAPES)
def test_each_row_once_in_the_windows_of_its_blocks(n, block_rows, window_blocks):
    for seed in (0, 7):
        order = EpochOrder(n, shuffle=True, seed=seed, block_rows=block_rows,
                           window_blocks=window_blocks)
        whole = order.to_array()
        assert sorted(whole.tolist()) == list(range(n))  # every row exactly once
        offsets = order.offsets
        windows = [whole[offsets[k]:offsets[k + 1]] for k in range(order.num_windows)]
        assert [sorted(w.tolist()) for w in windows] == _naive_order(n, seed, block_rows,
                                                                     window_blocks)
        for k, w in enumerate(windows):  # any window is drawn without the ones before it
            np.testing.assert_array_equal(order.window(k), w)
        again = EpochOrder(n, shuffle=True, seed=seed, block_rows=block_rows,
                           window_blocks=window_blocks)
        np.testing.assert_array_equal(again.to_array(), whole)  # reproducible from the seed


def test_one_window_is_a_full_permutation_and_seeds_differ():
    for n in (1, 12, 100):
        order = EpochOrder(n, shuffle=True, seed=3, block_rows=10, window_blocks=10)
        assert order.num_windows == 1
        np.testing.assert_array_equal(order.to_array(),
                                      np.random.default_rng(3).permutation(n))
    big = [EpochOrder(1000, shuffle=True, seed=s, block_rows=8, window_blocks=4).to_array()
           for s in (0, 1)]
    assert not np.array_equal(*big)
    # rows of a window are mixed, not its blocks laid end to end
    assert len(set((big[0][:8] // 8).tolist())) > 1


def test_unshuffled_windows_are_consecutive_ranges():
    order = EpochOrder(10, shuffle=False, block_rows=2, window_blocks=2)
    assert order.offsets.tolist() == [0, 4, 8, 10]
    assert [c.tolist() for c in order.chunks(3, 9)] == [[3], [4, 5, 6, 7], [8]]
    assert order.to_array().tolist() == list(range(10))


@pytest.mark.parametrize("n,block_rows,window_blocks", SHAPES)
def test_chunks_are_slices_of_the_order(n, block_rows, window_blocks):
    order = EpochOrder(n, shuffle=True, seed=1, block_rows=block_rows,
                       window_blocks=window_blocks)
    whole = order.to_array()
    for start in range(0, n + 1, 3):
        for stop in (start, min(n, start + 5), n):
            parts = list(order.chunks(start, stop))
            got = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            np.testing.assert_array_equal(got, whole[start:stop])
            assert all(len(p) <= block_rows * window_blocks for p in parts)


def test_options_are_validated():
    with pytest.raises(ValueError, match="num_rows"):
        EpochOrder(-1, shuffle=True)
    with pytest.raises(ValueError, match="block_rows"):
        EpochOrder(5, shuffle=True, block_rows=0)
    with pytest.raises(ValueError, match="window_blocks"):
        EpochOrder(5, shuffle=True, window_blocks=1.5)
    with pytest.raises(TypeError, match="shuffle"):
        EpochOrder(5, shuffle=1)
    with pytest.raises(TypeError, match="seed"):
        EpochOrder(5, shuffle=True, seed=0.5)
    with pytest.raises(ValueError, match="seed"):
        EpochOrder(5, shuffle=True, seed=-1)
    with pytest.raises(ValueError, match="start"):
        list(EpochOrder(5, shuffle=True).chunks(4, 2))
    with pytest.raises(ValueError, match="window"):
        EpochOrder(5, shuffle=True).window(1)


# ------------------------------------------------------------------ the dataset's readers
def _numbered(n: int, *, block_rows: int = 4, window_blocks: int = 3) -> EncodedDataset:
    """Row r holds r in sparse column 0 and dense column 0 (r is exact in float32)."""
    sparse = np.stack([np.arange(n), np.arange(n) % 5], 1)
    dense = np.stack([np.arange(n), np.ones(n)], 1).astype(np.float32)
    ds = EncodedDataset.from_arrays(dense, sparse, (np.arange(n) % 2).astype(np.float32))
    return ds.with_window_shuffle(block_rows=block_rows, window_blocks=window_blocks)


@pytest.mark.parametrize("n", [0, 5, 12, 13, 50, 61])
@pytest.mark.parametrize("batch_size", [1, 5, 12])
def test_batches_follow_the_order_across_windows(n, batch_size):
    ds = _numbered(n)
    order = EpochOrder(n, shuffle=True, seed=4, block_rows=4, window_blocks=3).to_array()
    batches = [b[1][:, 0].tolist() for b in ds.iter_batches(batch_size, shuffle=True, seed=4)]
    assert [len(b) for b in batches] == [min(batch_size, n - i) for i in range(0, n, batch_size)]
    assert sum(batches, []) == order.tolist()
    for dense, sparse, label, _ in ds.iter_batches(batch_size, shuffle=True, seed=4):
        np.testing.assert_array_equal(dense[:, 0].numpy(), sparse[:, 0].numpy())  # rows intact
        np.testing.assert_array_equal(label.numpy(), (sparse[:, 0] % 2).numpy())
    # resume mid-epoch and take a range of positions, across window boundaries
    for start, stop in ((0, n), (n // 3, n), (n // 4, n - n // 5)):
        got = sum((b[1][:, 0].tolist() for b in ds.iter_batches(
            batch_size, shuffle=True, seed=4, start=start, stop=stop)), [])
        assert got == order[start:stop].tolist()
    dropped = [len(b[1]) for b in ds.iter_batches(batch_size, shuffle=True, seed=4,
                                                  drop_last=True)]
    assert dropped == [batch_size] * (n // batch_size)


def test_views_order_their_own_positions():
    ds = _numbered(40)
    view = ds.rows(10, 35)
    order = EpochOrder(25, shuffle=True, seed=2, block_rows=4, window_blocks=3).to_array()
    got = sum((b[1][:, 0].tolist() for b in view.iter_batches(4, shuffle=True, seed=2)), [])
    assert got == (order + 10).tolist()
    assert view.rows(5, 10).sparse[:, 0].tolist() == list(range(15, 20))  # parameters travel


def _record_reads(monkeypatch) -> list[int]:
    """Row ids the dataset gathers into batches, in order (sparse column 0 of each row)."""
    seen: list[int] = []
    tensors = batches_module._tensors

    def recording(parts):
        out = tensors(parts)
        seen.extend(out[1][:, 0].tolist())
        return out

    monkeypatch.setattr(batches_module, "_tensors", recording)
    return seen


@pytest.mark.parametrize("n,batch_size", [(61, 8), (61, 12), (49, 8), (7, 8), (3, 4)])
def test_shares_equal_the_reference_and_read_only_their_rows(monkeypatch, n, batch_size):
    ds = _numbered(n)
    world = 2
    reference = [list(shard_batches(ds.iter_batches(batch_size, shuffle=True, seed=9),
                                    rank=r, world_size=world)) for r in range(world)]
    reads = _record_reads(monkeypatch)
    trained = []
    for rank in range(world):
        reads.clear()
        shares = list(ds.iter_shares(batch_size, shuffle=True, seed=9, rank=rank,
                                     world_size=world))
        assert len(shares) == len(reference[rank])
        for (w, part), (w_ref, part_ref) in zip(shares, reference[rank]):
            assert w == w_ref
            for t, t_ref in zip(part, part_ref):
                torch.testing.assert_close(t, t_ref, rtol=0, atol=0)
        mine = [v for w, part in shares for v in part[1][:, 0].tolist()]
        assert reads == mine  # this rank read its rows (and stand-ins) and nothing else
        trained += [v for w, part in shares if w for v in part[1][:, 0].tolist()]
    assert sorted(trained) == list(range(n))  # across the ranks, every row once per epoch


def test_shares_for_one_and_three_ranks():
    ds = _numbered(50)
    one = list(ds.iter_shares(16, shuffle=True, seed=0, rank=0, world_size=1))
    assert all(w == 1.0 for w, _ in one)
    assert [b[1].tolist() for _, b in one] == [b[1].tolist() for b in
                                               ds.iter_batches(16, shuffle=True, seed=0)]
    for rank in range(3):
        got = ds.iter_shares(16, shuffle=False, seed=0, rank=rank, world_size=3)
        ref = shard_batches(ds.iter_batches(16, shuffle=False, seed=0), rank=rank, world_size=3)
        for (w, part), (w_ref, part_ref) in zip(got, ref, strict=True):
            assert w == w_ref and torch.equal(part[1], part_ref[1])


def test_a_cache_reads_the_same_rows_as_arrays(tmp_path):
    clicks = make_synthetic_clicks(700, seed=2, num_dense=2, num_categorical=3, vocab_size=20,
                                   planted_pairs=((0, 1),), planted_triples=())
    schema = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2", "C3"))
    enc = FeatureEncoder(schema).fit([clicks])
    cache = encode_to_cache([clicks], enc, tmp_path / "c").with_window_shuffle(
        block_rows=16, window_blocks=5)
    arrays = EncodedDataset.from_arrays(np.array(cache.dense), np.array(cache.sparse),
                                        np.array(cache.label)).with_window_shuffle(
        block_rows=16, window_blocks=5)
    # 64-row batches straddle the 80-row windows; views read their own rows of the files
    pairs = [(cache, arrays), (cache.rows(100, 650), arrays.rows(100, 650)),
             (cache.subset([5, 3, 4, 600, 2, 3]), arrays.subset([5, 3, 4, 600, 2, 3]))]
    for c, a in pairs:
        for x, y in zip(c.iter_batches(64, shuffle=True, seed=1),
                        a.iter_batches(64, shuffle=True, seed=1), strict=True):
            assert all(u is v is None or torch.equal(u, v) for u, v in zip(x, y))
        for rank in range(3):
            for (w, x), (v, y) in zip(
                    c.iter_shares(64, shuffle=True, seed=1, rank=rank, world_size=3),
                    shard_batches(a.iter_batches(64, shuffle=True, seed=1), rank=rank,
                                  world_size=3), strict=True):
                assert w == v and all(s is t is None or torch.equal(s, t) for s, t in zip(x, y))
    with pytest.raises(ValueError, match="block_rows"):
        cache.with_window_shuffle(block_rows=0, window_blocks=2)
