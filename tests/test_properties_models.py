"""Property tests of the stages after loading: encode_items, build_index, search, recommend,
user_vectors, OnlineRecommender, the config dataclasses and job files.

Every input must end in a valid result (shapes, dtypes, finite vectors, sorted scores, no seen
items, ids preserved) or in an :class:`mmrec.errors.MmrecError` whose message names what was wrong.
Any other exception fails the test: it is a bug to fix in mmrec, not to whitelist here.

The ``ci`` hypothesis profile (tests/conftest.py) runs by default; for a longer bug hunt::

    HYPOTHESIS_PROFILE=thorough OMP_NUM_THREADS=1 python -m pytest -q tests/test_properties*.py
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import mmrec
from mmrec.errors import ConfigError, MmrecError, UnknownNameError

ITEMS = [f"i{n}" for n in range(12)]
CATEGORIES = ["shoes", "bags", "hats"]
DIM = 8

any_float = st.floats(allow_nan=True, allow_infinity=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
any_text = st.one_of(st.text(max_size=20), st.sampled_from(["", " ", "!!!", "the a an", "é" * 40]),
                     st.integers(2_000, 40_000).map(lambda n: "word soup " * (n // 10)))
any_scalar = st.one_of(any_float, st.integers(), st.integers(-(2**70), 2**70), st.text(max_size=6), st.none(),
                       st.booleans())
# k as callers pass it: sensible, zero, negative, huge, or not an int at all
any_k = st.one_of(st.integers(1, 15), st.integers(-3, 0), st.just(10**12), st.floats(0, 20),
                  st.text(max_size=2))


@functools.cache
def item_vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(ITEMS), DIM)).astype(np.float32)


def attributes() -> pd.DataFrame:
    return pd.DataFrame({"item_id": ITEMS, "category": [CATEGORIES[i % 3] for i in range(len(ITEMS))],
                         "price": np.arange(len(ITEMS), dtype=np.float64)})


def small_index() -> mmrec.ItemIndex:
    """A fresh exact index over 12 items with attributes (fresh: OnlineRecommender may add to it)."""
    return mmrec.build_index(item_vectors(), ids=ITEMS, spec="Flat", attributes=attributes())


@st.composite
def logs(draw, min_rows=0):
    """Events of a few users on indexed items, unknown items and with odd values."""
    n = draw(st.integers(min_rows, 12))
    items = st.one_of(st.sampled_from(ITEMS), st.sampled_from(["unknown", "i99"]))
    value = st.one_of(st.integers(1, 5).map(float), finite, st.none())
    frame = pd.DataFrame({
        "user_id": draw(st.lists(st.sampled_from(["u1", "u2", "u3"]), min_size=n, max_size=n)),
        "item_id": draw(st.lists(items, min_size=n, max_size=n)),
        "timestamp": draw(st.lists(st.integers(0, 10**9).map(float), min_size=n, max_size=n)),
        "event": draw(st.lists(st.sampled_from(["click", "purchase", "skip", "rating", "new"]),
                               min_size=n, max_size=n)),
        "value": draw(st.lists(value, min_size=n, max_size=n)),
    }, dtype=object)
    return mmrec.Interactions.from_frame(frame)


users_arg = st.one_of(st.none(), st.lists(st.one_of(st.sampled_from(["u1", "u2", "nobody"]), any_scalar),
                                          max_size=4), st.just("u1"))
where_arg = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["category", "price", "nope"]),
    st.one_of(st.sampled_from(CATEGORIES), st.lists(st.sampled_from(CATEGORIES + ["none"]), max_size=2),
              any_scalar), max_size=2))


def check_recommendations(recs: pd.DataFrame, index: mmrec.ItemIndex, events: mmrec.Interactions, *,
                          k: int, exclude_seen: bool, where) -> None:
    assert list(recs.columns) == ["user", "rank", "item", "score", "source"]
    assert recs["score"].dtype == np.float64 and np.isfinite(recs["score"]).all()
    allowed = set(index.item_ids) if not where else set(index.ids[index.mask(where)])
    seen = events.frame.groupby("user")["item"].agg(set).to_dict()
    for user, group in recs.groupby("user", sort=False):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert len(group) <= min(k, len(index))
        assert group["item"].is_unique and set(group["item"]) <= allowed
        scores = group["score"].to_numpy()
        assert (np.diff(scores) <= 1e-6).all(), scores  # sorted, best first
        if exclude_seen:
            assert not set(group["item"]) & seen.get(user, set())


def check_error_names(exc: MmrecError, *names: str) -> None:
    message = str(exc)
    assert any(name in message for name in names), message


@given(logs(), users_arg, any_k, st.booleans(), where_arg,
       st.one_of(st.none(), any_float, st.just(3600.0)))
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]})),
         None, 10**12, True, None, None)  # huge k
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i2"],
                                                     "value": [1e308, 1e-300]})),
         None, 3, True, None, None)  # weights overflow float32
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]})),
         "u1", 3, True, None, None)  # a str where a list of users belongs
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]})),
         ["u1", "u1"], 3, True, None, None)  # a user asked for twice
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]})),
         None, 10**12, False, {"category": []}, None)  # a filter that allows no item (thorough)
def test_recommend_serves_any_users_k_and_filters(events, users, k, exclude_seen, where, half_life):
    index = small_index()
    try:
        recs = mmrec.recommend(index, events, users=users, k=k, exclude_seen=exclude_seen, where=where,
                               half_life=half_life)
    except MmrecError as exc:
        check_error_names(exc, "k", "users", "half_life", "filter", "where", "row")
        return
    check_recommendations(recs, index, events, k=k, exclude_seen=exclude_seen, where=where)
    wanted = None if users is None else [str(u) for u in users]
    if wanted is not None:
        assert set(recs["user"]) <= set(wanted)
    else:  # every user of the log with an allowed item left gets something (a filter may allow none)
        allowed = set(index.ids[index.mask(where)]) if where else set(index.item_ids)
        seen = events.frame.groupby("user")["item"].agg(set).to_dict() if exclude_seen else {}
        served = {user for user in events.users if allowed - seen.get(user, set())}
        assert set(recs["user"]) == served


@given(logs(), users_arg, st.one_of(st.none(), any_float))
@example(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i0", "i0"],
                                                     "event": ["click", "purchase"],
                                                     "value": [1.0, 3.595386269724632e307]})),
         None, None)  # a purchase's weight 5 * value overflows float64 (thorough)
def test_user_vectors_are_unit_or_zero(events, users, half_life):
    index = small_index()
    try:
        profile = mmrec.user_vectors(index, events, users=users, half_life=half_life)
    except MmrecError as exc:
        check_error_names(exc, "users", "half_life", "row")
        return
    n = len(events.users) if users is None else len({str(u) for u in users})
    assert profile.vectors.shape == (n, DIM) and profile.vectors.dtype == np.float32
    assert np.isfinite(profile.vectors).all()
    norms = np.linalg.norm(profile.vectors, axis=1)
    np.testing.assert_allclose(norms[profile.has_signal], 1.0, rtol=1e-4)
    assert (norms[~profile.has_signal] < 1e-6).all()


matrices = st.one_of(
    arrays(np.float32, st.tuples(st.integers(0, 20), st.integers(1, 6)),
           elements=st.floats(-1e3, 1e3, width=32)),
    arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 6)), elements=any_float),
    arrays(np.int64, st.tuples(st.integers(1, 10), st.integers(1, 4)), elements=st.integers(-5, 5)),
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)),
           elements=st.sampled_from([0.0, 1e30, -1e38, 3e38, 1e-30])),
    arrays(object, st.tuples(st.integers(1, 4), st.integers(1, 3)), elements=any_scalar),
    arrays(np.float32, st.integers(0, 5)),
)


@given(matrices, st.one_of(st.none(), st.lists(any_scalar, max_size=22)),
       st.sampled_from([None, "Flat", "HNSW8", "IVF2,Flat", "IVF300,Flat", "not-a-spec"]))
@example(np.array([["a", "b"]], dtype=object), None, "Flat")  # text where numbers belong
@example(np.full((3, 2), 3e38, dtype=np.float64), None, "Flat")  # finite, but its norm overflows
@example(np.array([[2.0], [5.5e-14]]), None, "Flat")  # a norm under the 1e-12 clamp
def test_build_index_over_any_matrix(vectors, ids, spec):
    try:
        index = mmrec.build_index(vectors, ids=ids, spec=spec)
    except MmrecError as exc:
        check_error_names(exc, "vectors", "ids", "spec", "index", "shape", "row")
        return
    n = len(vectors)
    assert len(index) == n and index.dim == vectors.shape[1]
    expected_ids = [str(i) for i in (ids if ids is not None else range(n))]
    assert index.ids.tolist() == expected_ids
    stored = np.asarray(index.vectors)
    assert stored.dtype == np.float32 and np.isfinite(stored).all()
    norms = np.linalg.norm(stored, axis=1)
    assert ((np.abs(norms - 1) < 1e-3) | (norms < 1e-6)).all()  # unit, or a zero row
    scores, labels = index.search(stored, min(n, 5))
    assert scores.dtype == np.float32 and labels.dtype == np.int64
    filled = labels >= 0
    assert np.isfinite(scores[filled]).all() and (np.diff(np.where(filled, scores, -np.inf)) <= 1e-5).all()


@given(arrays(np.float64, st.tuples(st.integers(0, 3), st.integers(DIM - 1, DIM + 1)), elements=any_float),
       any_k, st.lists(st.lists(st.integers(-2, 14), max_size=3), max_size=3), where_arg)
@example(np.ones((1, DIM)), 3, [], {"category": 2**63})  # an int beyond int64 as a filter value
def test_index_search_takes_any_queries(queries, k, exclude, where):
    index = small_index()
    try:
        allowed = index.mask(where) if where else None
        scores, labels = index.search(queries, k, exclude_idx=exclude if exclude else None, allowed=allowed)
    except MmrecError as exc:
        check_error_names(exc, "queries", "k", "exclude_idx", "filter", "dim")
        return
    assert scores.shape == labels.shape == (len(queries), min(k, index.n_labels))
    for row in range(len(queries)):
        got = labels[row][labels[row] >= 0]
        assert len(set(got.tolist())) == len(got)
        if exclude:
            assert not set(got.tolist()) & set(exclude[row])
        if allowed is not None:
            assert allowed[got].all()


# ----------------------------------------------------------------------------- encode_items
@functools.cache
def text_encoder(preset: str) -> mmrec.Encoder:
    """One encoder per preset for all examples (GloVe's vectors are read once; both refit per call)."""
    from mmrec.encoders.presets import preset_available

    if not preset_available(preset):
        pytest.skip(f"{preset} is not installed")
    return mmrec.create_encoder(preset)


@pytest.mark.parametrize("preset", ["text-tfidf-svd", "text-glove-6b-50d"])
@given(texts=st.lists(st.tuples(any_text, st.one_of(any_text, st.none())), min_size=1, max_size=8))
@example(texts=[("!!!", None), ("?", "...")])  # no word at all: nothing to fit TF-IDF on
@example(texts=[("", None)])
def test_encode_items_over_any_text(preset, texts):
    encoder = text_encoder(preset)
    frame = pd.DataFrame({"item_id": [f"x{i}" for i in range(len(texts))],
                          "title": [t for t, _ in texts], "body": [b for _, b in texts]})
    catalog = mmrec.Catalog.from_frame(frame, schema={"id": "item_id", "text": ["title", "body"]})
    try:
        items = mmrec.encode_items(catalog, encoders={"text": encoder}, show_progress=False)
    except MmrecError as exc:
        check_error_names(exc, "text")
        return
    n = len(catalog)
    assert items.ids.tolist() == catalog.ids.tolist()
    text = items.vectors["text"]
    assert text.shape == (n, encoder.dim) and text.dtype == np.float32 and np.isfinite(text).all()
    assert np.asarray(items.fused).shape[0] == n and np.isfinite(np.asarray(items.fused)).all()
    counts = items.report.counts["text"]
    assert counts["encoded"] + counts["absent"] + counts["failed"] == n
    assert counts["encoded"] == int(items.masks["text"].sum())
    blank = [not (t.strip() or (b or "").strip()) for t, b in texts]
    assert not items.masks["text"][blank].any()  # an item without text is never "encoded"
    norms = np.linalg.norm(text[items.masks["text"]], axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-4)  # encoded items are unit vectors


tfidf_overrides = st.dictionaries(
    st.sampled_from(["dim", "ngram_range", "min_df", "max_features", "stop_words", "sublinear_tf", "nope"]),
    st.one_of(st.integers(-2, 5), st.tuples(st.integers(-1, 3), st.integers(-1, 3)), st.none(),
              st.sampled_from(["english", "klingon", ""]), any_float, st.text(max_size=3)), max_size=3)


@given(tfidf_overrides)
@example({"ngram_range": (2, 1)})
@example({"min_df": 0})
@example({"stop_words": "klingon"})
def test_text_encoder_overrides_are_checked_when_built(overrides):
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({"item_id": ["a", "b", "c"],
                                                     "title": ["red shoes", "blue bag", "green hat"]}))
    try:
        encoder = mmrec.create_encoder("text-tfidf-svd", overrides=overrides)
        items = mmrec.encode_items(catalog, encoders={"text": encoder}, show_progress=False)
    except MmrecError as exc:
        check_error_names(exc, *overrides)
        return
    assert np.isfinite(items.vectors["text"]).all() and len(items.ids) == 3


@given(st.text(max_size=30))
@example("text-tfidf-svd ")
def test_registry_lookups_take_any_name(name):
    try:
        preset = mmrec.get_preset(name)
    except UnknownNameError as exc:
        assert repr(name) in str(exc) or name in str(exc)
    else:
        assert preset.name in mmrec.list_encoders()


# ----------------------------------------------------------------------------- online
@functools.cache
def fitted_model() -> mmrec.TwoTower:
    frame = pd.DataFrame({"user_id": [f"u{n % 4}" for n in range(40)],
                          "item_id": [ITEMS[(n * 5) % len(ITEMS)] for n in range(40)],
                          "timestamp": np.arange(40, dtype=np.float64)})
    model = mmrec.TwoTower(user_tower="mean", dim=DIM, epochs=1, batch_size=16, seed=0, item_ids=True)
    return model.fit(None, mmrec.Interactions.from_frame(frame), show_progress=False)


events_arg = st.lists(st.tuples(
    st.one_of(st.sampled_from(["u1", "new"]), any_scalar),
    st.one_of(st.sampled_from(ITEMS[:4] + ["unknown"]), any_scalar),
    st.one_of(st.sampled_from(["click", "purchase", "skip"]), any_scalar),
    st.one_of(st.just(1.0), any_scalar),
    st.one_of(st.none(), st.integers(0, 100).map(float), any_scalar)), max_size=4)


@given(events_arg, st.one_of(st.sampled_from(["u1", "new", "never"]), any_scalar), any_k)
@example([("u1", "i1", "click", 1.0, math.nan)], "u1", 5)  # a NaN time would poison the state
@example([("u1", "i1", "click", "x", None)], "u1", 5)  # a value that is not a number
@example([("u1", "i1", "click", 1.0, -(2**2000))], "u1", 5)  # an int no float can hold
def test_online_recommender_takes_any_events(events, user, k):
    model = fitted_model()
    index = mmrec.build_index(model.encode_items(), spec="Flat")
    online = mmrec.OnlineRecommender(model, index, history=None)
    observed = []
    for event in events:
        try:
            online.observe(*event)
        except MmrecError as exc:
            check_error_names(exc, "observe")
        else:
            observed.append(event)
    try:
        recs = online.recommend(user, k=k)
    except MmrecError as exc:
        check_error_names(exc, "k")
        return
    assert list(recs.columns) == ["user", "rank", "item", "score", "source"]
    assert len(recs) <= min(k, len(index)) and recs["item"].is_unique
    assert np.isfinite(recs["score"]).all() and (np.diff(recs["score"]) <= 1e-6).all()
    seen = {str(e[1]) for e in observed if str(e[0]) == str(user)}
    assert not set(recs["item"]) & seen


# ----------------------------------------------------------------------------- configs
def field_values(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    return st.dictionaries(st.sampled_from(names), st.one_of(any_scalar, st.lists(st.integers(), max_size=2),
                                                             st.sampled_from(["gated", "mean", "auto"])),
                           max_size=3)


@pytest.mark.parametrize("cls", [mmrec.TwoTowerConfig, mmrec.TrainConfig])
@given(data=st.data())
def test_config_dataclasses_reject_wrong_values_with_a_config_error(cls, data):
    values = data.draw(field_values(cls))
    try:
        config = cls(**values)
    except ConfigError as exc:
        check_error_names(exc, *values)
        return
    for name, value in values.items():  # what was accepted is kept (tuples for lists and a lone name)
        kept = getattr(config, name)
        if isinstance(kept, tuple):
            value = (value,) if isinstance(value, str) else tuple(value)
        assert kept == value


toml_values = st.recursive(
    st.one_of(st.integers(-5, 5), st.floats(-1, 1), st.booleans(),
              st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=5)),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["dim", "epochs", "x"]),
                                                                inner, max_size=2), max_leaves=4)


def toml_text(values: dict) -> str:
    def literal(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(literal(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {literal(x)}" for k, x in v.items()) + "}"
        return repr(v)

    return "\n".join(f"{k} = {literal(v)}" for k, v in values.items()) + "\n"


def load_job_file(loader, values: dict, *names: str):
    """The job a TOML file of ``values`` loads to, or None after checking the ConfigError it raised
    names one of the keys (or ``names``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.toml"
        path.write_text(toml_text(values), "utf-8")
        try:
            return loader(path)
        except MmrecError as exc:
            assert isinstance(exc, ConfigError), exc
            check_error_names(exc, *values, *names)
            return None


@given(st.dictionaries(st.sampled_from(["events", "out", "items", "split", "model", "training",
                                        "event_weights", "ks", "unknown"]), toml_values, max_size=4))
@example({"events": 5})
@example({"events": "e.csv", "model": "gated"})
def test_train_job_file_with_any_values(values):
    from mmrec.jobs.train import load_train_job

    job = load_job_file(load_train_job, values, "events")
    if job is None:
        return
    assert isinstance(job.events, str) and Path(job.events).is_absolute()
    assert isinstance(job.model, dict) and isinstance(job.training, dict)
    assert all(isinstance(k, int) for k in job.ks)


# ----------------------------------------------------------------------------- index updates, model calls
@given(st.lists(st.one_of(st.sampled_from(ITEMS[:3] + ["new1", "new2"]), any_scalar), max_size=4),
       arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(DIM - 1, DIM + 1)), elements=any_float),
       st.sampled_from(["add", "update", "remove"]))
@example(["i1"], np.full((1, DIM), np.nan), "update")  # a refused update used to drop the item
def test_index_add_update_remove_take_any_ids_and_vectors(ids, vectors, operation):
    index = small_index()
    before = set(index.item_ids)
    try:
        if operation == "remove":
            index.remove(ids)
        else:
            getattr(index, operation)(ids, vectors)
    except MmrecError as exc:
        check_error_names(exc, "item", "ids", "vectors", "dim", "row")
        assert set(index.item_ids) == before  # a refused call changes nothing
        return
    names = {str(i) for i in ids}
    if operation == "remove":
        assert set(index.item_ids) == before - names
    else:
        assert set(index.item_ids) == before | names and len(ids) == len(vectors)
    assert np.isfinite(np.asarray(index.vectors)[index.alive]).all()
    scores, labels = index.search(np.ones((1, DIM)), 3)
    assert index.alive[labels[labels >= 0]].all()


@given(st.dictionaries(st.sampled_from(["dim", "epochs", "fusion", "user_tower", "lr", "modalities", "seed",
                                        "nope", "max_len", "device"]),
                       st.one_of(any_scalar, st.sampled_from(["gated", "mean", "gru", "cpu"])), max_size=3))
@example({"dim": "64"})
def test_two_tower_constructor_takes_any_overrides(overrides):
    try:
        model = mmrec.TwoTower(**overrides)
    except ConfigError as exc:
        check_error_names(exc, *overrides)
    else:
        for name, value in overrides.items():
            config = model.config if hasattr(model.config, name) else model.training
            kept = getattr(config, name)
            assert kept == ((value,) if isinstance(kept, tuple) and isinstance(value, str) else value)


@given(users_arg, any_k, st.booleans())
@example(None, "3", True)
def test_two_tower_recommend_and_encode_users_take_any_users_and_k(users, k, exclude_seen):
    model = fitted_model()
    events = mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u1", "u1", "u2"],
                                                         "item_id": ["i1", "unknown", "i2"]}))
    try:
        profile = model.encode_users(events, users=users)
        recs = model.recommend(events, users=users, k=k, exclude_seen=exclude_seen)
    except MmrecError as exc:
        check_error_names(exc, "k", "users")
        return
    assert np.isfinite(profile.vectors).all() and profile.vectors.shape[1] == DIM
    assert list(recs.columns) == ["user", "rank", "item", "score", "source"]
    for _, group in recs.groupby("user"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1)) and len(group) <= k
        assert group["item"].is_unique and (np.diff(group["score"]) <= 1e-6).all()


EVALUATE_KEYS = ["dataset", "events", "catalog", "split", "models", "evaluation", "out", "unknown"]


@given(st.dictionaries(st.sampled_from(EVALUATE_KEYS), toml_values, max_size=4))
@example({"events": "e.csv", "models": []})
@example({"events": "e.csv", "evaluation": 3})
def test_evaluate_job_file_with_any_values(values):
    from mmrec.jobs.evaluate import load_evaluate_job

    job = load_job_file(load_evaluate_job, values, "events", "dataset")
    if job is None:
        return
    assert (job.dataset is None) != (job.events is None)
    assert isinstance(job.models, dict) and isinstance(job.evaluation, dict)


@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)), st.sampled_from([".yaml", ".toml", ".yml"]))
@example(b"\xff\xfe", ".yaml")  # not UTF-8
@example("- a\n- b\n", ".yaml")  # a list, not a mapping
def test_config_files_with_any_content(content, suffix):
    from mmrec.utils.config import read_config_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"config{suffix}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            values = read_config_file(path)
        except ConfigError as exc:
            assert str(path) in str(exc), str(exc)
        else:
            assert isinstance(values, dict)
