"""Sharded indexes: merged per-shard top-k equals one index's top-k; built and searched shard by shard."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import mmrec
from mmrec.errors import ConfigError
from mmrec.index.item_index import l2_normalize
from mmrec.index.sharded import ShardedIndex, build_sharded_index, merge_topk


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    vectors = l2_normalize(rng.normal(size=(900, 24)).astype(np.float32))
    queries = rng.normal(size=(30, 24)).astype(np.float32)
    return vectors, queries


@pytest.fixture(scope="module")
def flat_pair(data, tmp_path_factory):
    vectors, _ = data
    single = mmrec.build_index(vectors, spec="Flat", use_gpu=False)
    sharded = build_sharded_index(vectors, tmp_path_factory.mktemp("sh") / "idx", n_shards=4, spec="Flat")
    return single, sharded


def test_merged_flat_top_k_equals_the_single_index_exactly(data, flat_pair):
    _, queries = data
    single, sharded = flat_pair
    assert sharded.ids.tolist() == single.ids.tolist() and len(sharded.shards) == 4
    for k in (1, 10, 300):  # 300 > a shard's 225 items: every shard contributes all it has
        expected = single.search(queries, k)
        got = sharded.search(queries, k)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[0], expected[0])


def test_one_shard_at_a_time_loads_each_shard_once_per_search(data, flat_pair):
    _, queries = data
    single, resident = flat_pair
    assert resident.loads == 4  # loaded once, at open
    lazy = ShardedIndex.load(resident.path, resident=False)
    assert lazy.loads == 0
    expected = single.search(queries, 10)
    for searches in (1, 2):
        got = lazy.search(queries, 10)
        assert lazy.loads == 4 * searches
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[0], expected[0])


def test_exclusions_and_filters_work_across_shards(data, flat_pair):
    vectors, queries = data
    single, sharded = flat_pair
    rng = np.random.default_rng(1)
    top = single.search(queries, 5)[1]
    # each query excludes its own top-3 (anywhere in the shards) plus random items
    excluded = [np.concatenate([top[q, :3], rng.choice(len(vectors), 40, replace=False)])
                for q in range(len(queries))]
    allowed = rng.random(len(vectors)) < 0.6
    expected = single.search(queries, 8, exclude_idx=excluded, allowed=allowed)
    got = sharded.search(queries, 8, exclude_idx=excluded, allowed=allowed)
    np.testing.assert_array_equal(got[1], expected[1])
    # narrow filters are scored by numpy matmuls of different shapes: last-bit differences only
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    assert not np.isin(got[1][0], excluded[0]).any() and allowed[got[1]].all()
    assert sharded.positions([sharded.ids[700]]).tolist() == [700]


def test_merge_topk_with_l2_distances_equals_one_flat_l2_index_and_faiss_index_shards(data):
    vectors, queries = data
    raw = vectors * np.linspace(0.5, 2.0, len(vectors), dtype=np.float32)[:, None]  # not unit
    bounds = [0, 250, 500, 650, 900]
    whole = faiss.IndexFlatL2(raw.shape[1])
    whole.add(raw)
    expected_d, expected_i = whole.search(queries, 12)
    per_d, per_i = [], []
    shards = faiss.IndexShards(raw.shape[1], False, True)  # not threaded, successive ids
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        part = faiss.IndexFlatL2(raw.shape[1])
        part.add(raw[a:b])
        parts.append(part)
        shards.add_shard(part)
        d, i = part.search(queries, 12)
        per_d.append(d)
        per_i.append(np.where(i >= 0, i + a, -1))
    got_d, got_i = merge_topk(np.concatenate(per_d, 1), np.concatenate(per_i, 1), 12, higher_is_better=False)
    np.testing.assert_array_equal(got_i, expected_i)
    np.testing.assert_array_equal(got_d, expected_d)
    faiss_d, faiss_i = shards.search(queries, 12)
    np.testing.assert_array_equal(got_i, faiss_i)


def test_ann_shards_reach_the_recall_of_exact_search(data, tmp_path):
    vectors, queries = data
    exact = mmrec.build_index(vectors, spec="Flat", use_gpu=False).search(queries, 10)[1]
    sharded = build_sharded_index(vectors, tmp_path / "hnsw", shard_size=300, spec="HNSW32")
    got = sharded.search(queries, 10)[1]
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)])
    assert recall >= 0.95, recall


class CountingRows:
    """An (n, d) matrix that records every row range read from it."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix, self.shape, self.reads = matrix, matrix.shape, []

    def __len__(self) -> int:
        return len(self.matrix)

    def __getitem__(self, key):
        assert isinstance(key, slice), "the sharded build reads row ranges only"
        self.reads.append((key.start, key.stop))
        return self.matrix[key]


def test_build_reads_one_shard_of_rows_at_a_time(data, tmp_path):
    vectors, queries = data
    rows = CountingRows(vectors)
    sharded = build_sharded_index(rows, tmp_path / "counted", shard_size=200, spec="Flat")
    assert rows.reads == [(0, 200), (200, 400), (400, 600), (600, 800), (800, 900)]
    assert [s["stop"] - s["start"] for s in sharded.shards] == [200, 200, 200, 200, 100]
    with pytest.raises(ConfigError, match="exactly one"):
        build_sharded_index(vectors, tmp_path / "bad", n_shards=2, shard_size=3)
