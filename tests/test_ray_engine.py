"""encode_items(engine="ray"): Ray Data actor pools give the local engine's vectors and report; the
Parquet-sharded output opens lazily. Ray runs in local mode with 2 CPUs, one session for the module.

Skipped when Ray is not installed, unless MMREC_REQUIRE_RAY=1 (CI sets it: there it must run).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import mmrec
from mmrec.datasets.demo import make_demo
from mmrec.encode.engines import EncodeEngine, resolve_engine
from mmrec.errors import ConfigError, MediaError, UnknownNameError
from mmrec.testing.worlds import FAST_IMAGE, fast_choice
from mmrec.vectors.shards import ShardedColumn, ShardWriter

HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_session():
    if not HAVE_RAY:
        if os.environ.get("MMREC_REQUIRE_RAY") == "1":
            pytest.fail("MMREC_REQUIRE_RAY=1 but ray is not importable; pip install -e '.[ray]'")
        pytest.skip("ray is not installed (pip install 'mmrec[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 40-item demo catalog (a corrupt image, a missing audio file) and its local-engine vectors."""
    demo = make_demo(tmp_path_factory.mktemp("ray_demo"), n_items=40, n_users=4, seed=3)
    encoders = fast_choice(mmrec.create_encoder("image-resnet18", overrides=FAST_IMAGE))
    local = mmrec.encode_items(mmrec.Catalog.from_path(demo.catalog), encoders=encoders, batch_size=8)
    return demo, encoders, local


def assert_same_vectors(local: mmrec.ItemVectors, other: mmrec.ItemVectors) -> None:
    """Same ids, masks, report; vectors within 1e-6 (relative: MFCC values of ~25 may differ in their
    last float32 bit with the thread count; the fused unit vectors within 1e-6 absolute)."""
    assert other.ids.tolist() == local.ids.tolist()
    assert other.modalities == local.modalities
    for m in local.modalities:
        np.testing.assert_array_equal(other.masks[m], local.masks[m])
        np.testing.assert_allclose(np.asarray(other.vectors[m]), local.vectors[m], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(other.scalers[m].mean, local.scalers[m].mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(other.fused), local.fused, rtol=0, atol=1e-6)
    assert other.report.counts == local.report.counts
    assert other.report.issues == local.report.issues


def test_ray_engine_from_a_catalog_file_writes_lazy_shards_equal_to_local(ray_session, small, tmp_path):
    demo, encoders, local = small
    assert {(i.item_id, i.modality) for i in local.report.issues} == {("item0003", "image"),
                                                                        ("item0005", "audio")}
    engine = EncodeEngine("ray", workers=2, shard_rows=16, row_group_rows=8)
    out = tmp_path / "vectors"
    items = mmrec.encode_items(demo.catalog, encoders=encoders, batch_size=8, engine=engine, out=out)
    assert sorted(p.name for p in (out / "shards").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not (out / ".raw").exists()
    reopened = mmrec.ItemVectors.load(out)
    for loaded in (items, reopened):
        assert isinstance(loaded.fused, ShardedColumn)
        assert all(isinstance(v, ShardedColumn) for v in loaded.vectors.values())
        assert loaded.fused.reads == 0, "opening reads no vectors"
        assert_same_vectors(local, loaded)
    # a row slice reads only the row groups it touches: rows 17..22 lie in one 8-row group
    column = reopened.vectors["image"]
    before = column.reads
    np.testing.assert_array_equal(column[17:23], local.vectors["image"][17:23])
    assert column.reads == before + 1
    np.testing.assert_array_equal(column[[39, 0, 20]], local.vectors["image"][[39, 0, 20]])
    # the lazy vectors index like the in-memory ones
    index = mmrec.build_index(reopened, spec="Flat")
    _, labels = index.search(np.asarray(local.fused[:3]), 1)
    assert labels[:, 0].tolist() == [0, 1, 2]


def test_ray_engine_on_an_in_memory_catalog_fits_tfidf_once_and_matches_local(ray_session, small):
    demo, _, _ = small
    catalog = mmrec.Catalog.from_path(demo.catalog)
    choice = {"text": "text-tfidf-svd", "image": None, "audio": None}
    local = mmrec.encode_items(catalog, encoders=choice, batch_size=8)
    distributed = mmrec.encode_items(catalog, encoders=choice, batch_size=8,
                                     engine={"name": "ray", "workers": 1})
    assert isinstance(distributed.vectors["text"], np.ndarray)
    assert_same_vectors(local, distributed)
    # fitted state travelled to the actors: vectors of a refit on a different corpus would differ
    assert np.abs(distributed.vectors["text"]).sum() > 0


def test_engine_settings_are_validated():
    assert resolve_engine("local") == EncodeEngine()
    assert resolve_engine({"name": "ray", "workers": 3}).workers == 3
    with pytest.raises(UnknownNameError, match="Did you mean 'ray'"):
        resolve_engine("rya")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        EncodeEngine("ray", workers=0)
    with pytest.raises(ConfigError, match="unknown"):
        resolve_engine({"name": "ray", "actors": 2})


def test_sharded_column_reads_row_groups_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 3)).astype(np.float32)
    writer = ShardWriter(tmp_path, shard_rows=20, row_group_rows=7)
    for start in range(0, 50, 9):  # blocks that straddle shard and row-group boundaries
        block = matrix[start : start + 9]
        writer.write(pa.table({"v": pa.FixedSizeListArray.from_arrays(block.reshape(-1), 3)}))
    shards = writer.close()
    assert [s["rows"] for s in shards] == [20, 20, 10]
    column = ShardedColumn([tmp_path / s["file"] for s in shards], "v", 3)
    assert column.shape == (50, 3) and len(column) == 50
    np.testing.assert_array_equal(np.asarray(column), matrix)
    np.testing.assert_array_equal(column[5:33], matrix[5:33])
    np.testing.assert_array_equal(column[::7], matrix[::7])
    np.testing.assert_array_equal(column[np.array([49, 3, 3, 21])], matrix[[49, 3, 3, 21]])
    np.testing.assert_array_equal(column[-1], matrix[-1])
    with pytest.raises(IndexError):
        column[np.array([50])]


# ----------------------------------------------------------------------------- errors raised in actors
def _failing_text_encoder(error: BaseException | None, *, on_unpickle: bool = False) -> mmrec.Encoder:
    """A 2-d text encoder (a class defined here, so Ray pickles it by value) that raises ``error``
    in ``encode`` on whole batches, or when it is unpickled in the actor (``on_unpickle``)."""

    class Failing(mmrec.Encoder):
        modality = "text"

        def __init__(self) -> None:
            self.unpickled = False

        @property
        def dim(self) -> int:
            return 2

        def __setstate__(self, state: dict) -> None:
            if on_unpickle:
                raise error
            self.__dict__.update(state, unpickled=True)

        def encode(self, batch):
            if error is not None and not on_unpickle:
                raise error
            return np.ones((len(batch), 2), np.float32)

    return Failing()


@pytest.fixture(scope="module")
def tiny():
    """Six items, text only."""
    frame = pd.DataFrame({"item_id": [f"t{i}" for i in range(6)], "title": [f"item {i}" for i in range(6)]})
    return mmrec.Catalog.from_frame(frame)


@pytest.mark.parametrize("error, on_unpickle", [
    (MediaError("text: the whole batch is unreadable (fix the files)"), False),
    (ConfigError("text encoder: bad setting 'x' (set it to 'y')"), True),  # fails building the actor
])
def test_an_mmrec_error_in_an_actor_surfaces_as_itself(ray_session, tiny, error, on_unpickle):
    encoders = {"text": _failing_text_encoder(error, on_unpickle=on_unpickle)}
    with pytest.raises(type(error)) as caught:
        mmrec.encode_items(tiny, encoders=encoders, batch_size=4, engine={"name": "ray", "workers": 1})
    assert type(caught.value) is type(error)
    assert str(caught.value) == str(error)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, "no Ray traceback"


def test_a_bug_in_an_actor_names_the_modality_and_the_items(ray_session, tiny):
    encoders = {"text": _failing_text_encoder(ZeroDivisionError("division by zero in encode"))}
    expected = r"encoding with Failing for 'text' failed on a batch of 4 items \(t0, t1, t2, \.\.\., t3\)"
    with pytest.raises(RuntimeError, match=expected) as caught:
        mmrec.encode_items(tiny, encoders=encoders, batch_size=4, engine={"name": "ray", "workers": 1})
    assert isinstance(caught.value.__cause__, ZeroDivisionError), "the original error is chained"
    assert "division by zero in encode" in str(caught.value) and "actor traceback" in str(caught.value)


# ----------------------------------------------------------------------------- actor resources (pure)
def _options(cluster, pretrained, device=None, **engine):
    from mmrec.encode.ray import actor_options

    options = actor_options(cluster, EncodeEngine("ray", **engine), pretrained, device)
    return {m: (o.num_cpus, o.num_gpus, o.concurrency) for m, o in options.items()}


MODALITIES = {"text": False, "image": True, "audio": True}  # TF-IDF text; two pretrained networks


def test_actor_options_share_cpus_and_give_gpus_only_to_pretrained_networks():
    # no GPU: (8 - 0.25) / 6 actors, floored to Ray's 1e-4 granularity so shares never exceed the total
    assert _options({"CPU": 8}, MODALITIES) == {m: (1.2916, 0.0, 2) for m in MODALITIES}
    # 1 GPU, 2 networks x 3 actors: 1/6 each, floored (rounding would ask 6 x 0.1667 > 1 and stall)
    one = _options({"CPU": 8, "GPU": 1}, MODALITIES, workers=3)
    assert one["text"][1] == 0.0 and one["image"][1] == one["audio"][1] == 0.1666
    assert sum(o[1] * o[2] for o in one.values()) <= 1.0
    # 4 GPUs, 2 networks x 2 actors: one GPU each; 4 GPUs for 1 network x 2 actors: at most 1 each
    assert {m: o[1] for m, o in _options({"CPU": 16, "GPU": 4}, MODALITIES).items()} == {
        "text": 0.0, "image": 1.0, "audio": 1.0}
    assert _options({"CPU": 16, "GPU": 4}, {"image": True})["image"][1] == 1.0
    # overrides; TF-IDF never gets a GPU, nor does anything when the caller asked for the CPU
    assert _options({"CPU": 8, "GPU": 2}, MODALITIES, cpus_per_worker=2, gpus_per_worker=0.25) == {
        "text": (2.0, 0.0, 2), "image": (2.0, 0.25, 2), "audio": (2.0, 0.25, 2)}
    assert _options({"CPU": 4, "GPU": 1}, {"text": False}, gpus_per_worker=1) == {"text": (1.875, 0.0, 2)}
    assert all(o[1] == 0.0 for o in _options({"CPU": 8, "GPU": 2}, MODALITIES, device="cpu").values())


def test_an_actor_given_a_gpu_builds_its_preset_on_cuda(monkeypatch):
    pytest.importorskip("ray")
    import ray

    import mmrec.encode.ray as encode_ray
    from mmrec.encode.ray import actor_device

    assert actor_device(None, []) == "cpu" and actor_device(None, [0]) == "cuda"
    assert actor_device("cpu", [0]) == "cpu", "an explicit device wins"
    built = []
    monkeypatch.setattr(encode_ray, "create_encoder", lambda spec, device: built.append(device) or spec)
    for gpu_ids, device in (([0], "cuda"), ([], "cpu")):
        monkeypatch.setattr(ray, "get_gpu_ids", lambda ids=gpu_ids: ids)
        worker = encode_ray.ModalityWorker("image", "image-resnet18", None, ".", None, 1, 512)
        assert worker.error is None and built[-1] == device
