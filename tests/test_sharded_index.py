"""Sharded indexes: merged per-shard top-k equals one index's top-k; built and searched shard by shard."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError
from mmrec.index.item_index import l2_normalize
from mmrec.index.sharded import ShardedIndex, build_sharded_index, load_serving_index, merge_topk


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


# ----------------------------------------------------------------------------- serving recommendations
@pytest.fixture(scope="module")
def catalog_log():
    """300 unit vectors with a category, and a log: 30 users with histories (some on one shard
    only), a user whose only rating is neutral (no signal) and one whose items are all unknown."""
    rng = np.random.default_rng(11)
    vectors = l2_normalize(rng.normal(size=(300, 16)).astype(np.float32))
    ids = [f"i{i}" for i in range(300)]
    attributes = pd.DataFrame({"item_id": ids, "category": rng.choice(["a", "b", "c"], 300)})
    rows = []
    for u in range(30):
        items = rng.choice(75 if u < 5 else 300, rng.integers(2, 12), replace=False)  # u0-u4: shard 0
        rows += [(f"u{u}", f"i{i}", float(t), rng.choice(["click", "purchase"]), None)
                 for t, i in enumerate(items)]
    rows += [("neutral", "i3", 0.0, "rating", 3.0), ("neutral", "i9", 1.0, "rating", 3.0),
             ("stranger", "gone", 0.0, "click", None)]
    log = mmrec.Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event", "value"]))
    return vectors, ids, attributes, log


@pytest.fixture(scope="module")
def serving(catalog_log, tmp_path_factory):
    vectors, ids, attributes, _ = catalog_log
    single = mmrec.build_index(vectors, ids=ids, spec="Flat", attributes=attributes, use_gpu=False)
    folder = tmp_path_factory.mktemp("serve") / "idx"
    build_sharded_index(vectors, folder, ids=ids, n_shards=4, spec="Flat", attributes=attributes)
    return single, folder


def assert_same_recommendations(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    for column in ("user", "rank", "item", "source"):
        assert got[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(got["score"], expected["score"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize("options", [
    {},
    {"exclude_seen": False, "half_life": 2.0},
    {"where": {"category": "a"}},
    {"where": {"category": ["b", "c"]}, "k": 40},
], ids=["plain", "seen-half-life", "where-a", "where-bc-k40"])
def test_recommend_over_shards_equals_the_single_index(catalog_log, serving, resident, options):
    *_, log = catalog_log
    single, folder = serving
    sharded = ShardedIndex.load(folder, resident=resident)
    users = ["u0", "u3", "u7", "u12", "u29", "neutral", "stranger", "nobody"]
    kwargs = {"k": 10} | options
    expected = mmrec.recommend(single, log, users=users, **kwargs)
    got = mmrec.recommend(sharded, log, users=users, **kwargs)
    assert_same_recommendations(got, expected)
    sources = got.groupby("user", sort=False)["source"].first()
    assert sources["u0"] == "content" and (sources[["neutral", "stranger", "nobody"]] == "popularity").all()
    if kwargs.get("exclude_seen", True):  # seen items are excluded across shards
        seen = set(log.frame.loc[log.frame["user"] == "u7", "item"])
        assert len(got[got["user"] == "u7"]) == kwargs["k"] and not seen & set(got.loc[got["user"] == "u7",
                                                                                         "item"])
    if "where" in kwargs:
        allowed = set(np.asarray(single.ids)[single.mask(kwargs["where"])])
        assert set(got["item"]) <= allowed


@pytest.mark.parametrize("resident", [True, False])
def test_recommend_batches_over_shards_equals_recommend_on_the_single_index(catalog_log, serving, resident):
    *_, log = catalog_log
    single, folder = serving
    sharded = ShardedIndex.load(folder, resident=resident)
    where = {"category": ["a", "c"]}
    expected = mmrec.recommend(single, log, k=7, where=where)
    batches = list(mmrec.recommend_batches(sharded, log, k=7, batch_size=6, where=where))
    assert len(batches) == 6  # 32 users of the log, 6 at a time
    assert_same_recommendations(pd.concat(batches, ignore_index=True), expected)
    assert expected["source"].eq("popularity").any()


def test_weighted_sum_loads_only_the_shards_it_needs(catalog_log, serving):
    from scipy.sparse import csr_matrix

    vectors, *_ = catalog_log
    single, folder = serving
    lazy = ShardedIndex.load(folder, resident=False)
    weights = csr_matrix((np.array([1.0, -0.5, 2.0], np.float32), ([0, 0, 1], [3, 70, 10])), shape=(2, 300))
    got = lazy.weighted_sum(weights)
    assert lazy.loads == 1  # every weight is on shard 0 (items 0..74)
    np.testing.assert_array_equal(single.weighted_sum(weights), weights @ single.vectors)
    np.testing.assert_allclose(got, weights @ vectors, rtol=0, atol=1e-6)
    every_7th = np.random.default_rng(0).random((3, 300)).astype(np.float32) * (np.arange(300) % 7 == 0)
    spread = csr_matrix(every_7th)
    np.testing.assert_allclose(lazy.weighted_sum(spread), spread @ vectors, rtol=0, atol=1e-5)
    assert lazy.loads == 1 + 4
    with pytest.raises(SchemaError, match="299 columns"):
        lazy.weighted_sum(csr_matrix((1, 299), dtype=np.float32))


def test_filters_need_attributes_and_masks_match_the_single_index(serving, flat_pair):
    single, folder = serving
    sharded = ShardedIndex.load(folder)
    np.testing.assert_array_equal(sharded.mask({"category": "b"}), single.mask({"category": "b"}))
    np.testing.assert_array_equal(sharded.alive, single.alive)
    _, plain = flat_pair  # built without attributes
    with pytest.raises(ConfigError, match="attributes=catalog"):
        plain.mask({"category": "b"})
    with pytest.raises(SchemaError, match="ItemIndex .* or a ShardedIndex"):
        mmrec.recommend(np.zeros((3, 3)), pd.DataFrame({"user_id": ["u"], "item_id": ["i0"]}))


def test_cli_recommend_opens_a_sharded_index_folder(catalog_log, serving, tmp_path, capsys):
    from mmrec.cli import main

    *_, log = catalog_log
    single, folder = serving
    events = tmp_path / "events.csv"
    log.frame.to_csv(events, index=False)
    expected = mmrec.recommend(single, log, k=5, where={"category": "a"})
    assert isinstance(load_serving_index(folder), ShardedIndex)
    for extra in ([], ["--shard-at-a-time"], ["--batch-size", "9"]):
        out = tmp_path / ("recs.parquet" if extra[:1] == ["--batch-size"] else "recs.csv")
        assert main(["-q", "recommend", "--index", str(folder), "--events", str(events), "--k", "5",
                     "--where", "category=a", "--out", str(out), *extra]) == 0
        got = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out, dtype={"user": str})
        assert_same_recommendations(got, expected)


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize("name", ["ids.json", "alive.npy", "index.faiss"])
def test_a_tampered_file_in_one_shard_is_refused_before_it_is_read(flat_pair, tmp_path, resident, name):
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(flat_pair[1].path, copy)
    target = copy / "shard-00002" / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a JSON / npy-header byte flipped used to crash the loader
    target.write_bytes(bytes(data))
    with pytest.raises(mmrec.ArtifactError, match=f"shard-00002/{name}.*checksum"):
        ShardedIndex.load(copy, resident=resident)
