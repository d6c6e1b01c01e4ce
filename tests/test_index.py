import numpy as np
import pytest

import mmrec
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.index import choose_index_spec


def clustered(n=2000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d))
    x = centers[rng.integers(20, size=n)] + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32)


def brute_force(vectors, queries, k):
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = queries @ v.T
    order = np.lexsort((np.broadcast_to(np.arange(len(v)), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), order


def test_flat_search_equals_brute_force():
    x = clustered(500)
    index = mmrec.build_index(x)
    queries = x[:25] / np.linalg.norm(x[:25], axis=1, keepdims=True)
    scores, idx = index.search(queries, 10)
    ref_scores, ref_idx = brute_force(x, queries, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert index.spec == "Flat" and idx.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize("spec", ["HNSW32", "IVF32,Flat"])
def test_approximate_indices_have_high_recall(spec):
    x = clustered(3000)
    index = mmrec.build_index(x, spec=spec)
    queries = x[:100] / np.linalg.norm(x[:100], axis=1, keepdims=True)
    _, idx = index.search(queries, 10)
    _, ref = brute_force(x, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, ref, strict=True)])
    assert recall >= 0.9, recall


def test_exclusion_keeps_k_and_never_returns_excluded():
    x = clustered(200)
    index = mmrec.build_index(x, ids=[f"it{i}" for i in range(200)])
    queries = index.vectors[:3]
    exclude = [np.arange(0, 150), [], np.arange(200)[::2]]
    scores, idx = index.search(queries, 20, exclude_idx=exclude)
    for row, excluded in enumerate(exclude):
        assert (idx[row] >= 0).all() and not set(idx[row]) & set(np.asarray(excluded).tolist())
        assert np.all(np.diff(scores[row]) <= 1e-7)
    ref_scores, ref_idx = brute_force(x[150:], queries[:1], 20)
    np.testing.assert_array_equal(idx[0], ref_idx[0] + 150)


def test_more_exclusions_than_items_pads_with_minus_one():
    index = mmrec.build_index(clustered(10))
    scores, idx = index.search(index.vectors[:1], 5, exclude_idx=[np.arange(8)])
    assert idx[0].tolist()[2:] == [-1, -1, -1] and set(idx[0, :2]) == {8, 9}
    assert np.isneginf(scores[0, 2:]).all()


def test_ties_break_by_position():
    x = np.ones((6, 4), np.float32)
    _, idx = mmrec.build_index(x).search(x[:1], 6)
    assert idx[0].tolist() == [0, 1, 2, 3, 4, 5]


def test_item_vectors_input_maps_ids(demo_items):
    index = mmrec.build_index(demo_items)
    assert index.ids.tolist() == demo_items.ids.tolist() and index.dim == demo_items.dim
    _, idx = index.search(demo_items.fused[10:11], 1)
    assert index.ids[idx[0, 0]] == demo_items.ids[10]


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF8,Flat"])
def test_save_load_round_trip(tmp_path, spec):
    x = clustered(400)
    index = mmrec.build_index(x, spec=spec, ids=[f"x{i}" for i in range(400)])
    index.save(tmp_path / "idx")
    loaded = mmrec.ItemIndex.load(tmp_path / "idx")
    a = index.search(index.vectors[:5], 7)
    b = loaded.search(index.vectors[:5], 7)
    np.testing.assert_array_equal(a[1], b[1])
    assert loaded.ids.tolist() == index.ids.tolist() and loaded.spec == spec
    assert loaded.params == index.params
    (tmp_path / "idx" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checksum"):
        mmrec.ItemIndex.load(tmp_path / "idx")


def test_automatic_choice_by_size():
    assert choose_index_spec(1_000, 64) == "Flat"
    assert choose_index_spec(500_000, 64) == "HNSW32"
    assert choose_index_spec(10_000_000, 64).startswith("IVF")


def test_bad_inputs():
    with pytest.raises(ConfigError, match="invalid FAISS factory string"):
        mmrec.build_index(clustered(50), spec="NotAnIndex")
    bad = clustered(50)
    bad[7, 3] = np.nan
    with pytest.raises(SchemaError, match="row 7 holds NaN"):
        mmrec.build_index(bad)
    with pytest.raises(SchemaError, match="unique"):
        mmrec.build_index(clustered(3), ids=["a", "a", "b"])
    index = mmrec.build_index(clustered(20))
    with pytest.raises(SchemaError, match="queries have dim"):
        index.search(np.zeros((1, 5), np.float32), 3)
    with pytest.raises(SchemaError, match="outside"):
        index.search(index.vectors[:1], 3, exclude_idx=[[25]])


def test_gpu_request_without_gpu_is_a_clear_error():
    import faiss

    if faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="use_gpu=True"):
        mmrec.build_index(clustered(20), use_gpu=True)


def test_too_few_training_points_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot train index 'IVF256,Flat' on 100 vectors"):
        mmrec.build_index(clustered(100), spec="IVF256,Flat")
