"""TwoTower: every tower and fusion trains, learned models beat the untrained baseline, no leakage,
save → load → encode is identical, training is deterministic and resumable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import mmrec
from mmrec.errors import ConfigError, NotFittedError, UnknownNameError
from mmrec.models.fusion_layers import FUSIONS
from mmrec.models.histories import EventVocabulary, Histories
from mmrec.models.towers import TOWERS

TOWER_NAMES = ["mean", "dnn", "gru", "lstm", "attention", "transformer"]
FUSION_NAMES = ["concat", "gated", "attention"]
TINY = {"dim": 16, "max_len": 20, "n_layers": 1, "batch_size": 32, "max_valid_users": None}


@pytest.fixture(scope="module")
def split(demo_events):
    return mmrec.leave_last_out(demo_events)


@pytest.mark.parametrize("tower", TOWER_NAMES)
def test_every_tower_trains_and_its_loss_falls(demo_items, split, tower):
    model = mmrec.TwoTower(user_tower=tower, fusion="gated", epochs=3, patience=5, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    losses = [e["loss"] for e in model.history_.epochs]
    assert len(losses) == 3 and losses[-1] < losses[0]
    users = model.encode_users(split.train)
    assert users.vectors.shape == (len(users.user_ids), model.vector_dim)
    assert users.vectors.dtype == np.float32
    learned = users.vectors[users.has_signal, :16] / model.vector_scale  # the tower's unit vectors
    assert np.allclose(np.linalg.norm(learned, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_every_fusion_masks_missing_modalities_and_exposes_weights(demo_items, split, fusion):
    model = mmrec.TwoTower(user_tower="mean", fusion=fusion, epochs=1, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    weights = model.modality_weights(demo_items)
    assert list(weights.columns) == [*demo_items.modalities, "id"]
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    partial = [m for m in demo_items.modalities if not demo_items.masks[m].all()]
    assert partial  # the demo has items without images / sounds
    for modality in partial:
        absent = ~demo_items.masks[modality]
        assert (weights.loc[demo_items.ids[absent], modality] == 0).all()


def test_missing_modality_is_masked_not_averaged_in(demo_items):
    """A gated fusion's output for an item must not change when the vector of a modality the item
    lacks changes (it is masked, not zero-filled into the mix)."""
    torch.manual_seed(0)
    fusion = FUSIONS.get("gated")(3, 8)
    tokens = torch.randn(2, 3, 8)
    present = torch.tensor([[True, False, True], [True, True, True]])
    out, _ = fusion(tokens, present)
    tokens2 = tokens.clone()
    tokens2[:, 1] += 100.0  # absent for item 0, present for item 1
    out2, _ = fusion(tokens2, present)
    assert torch.allclose(out[0], out2[0])
    assert not torch.allclose(out[1], out2[1])


@pytest.mark.parametrize("tower", TOWER_NAMES)
def test_towers_are_causal(tower):
    """The state at position t depends only on events up to t (no peeking at the target)."""
    torch.manual_seed(0)
    module = TOWERS.get(tower)(8, n_events=3, n_layers=2, n_heads=2, dropout=0.0, max_len=6).eval()
    x = torch.randn(2, 6, 8)
    present = torch.tensor([[False, True, True, True, True, True]] * 2)
    events = torch.full((2, 6), 2)
    changed = x.clone()
    changed[:, 4:] += 5.0 * torch.randn(2, 2, 8)
    with torch.no_grad():
        before, after = module(x, present, events), module(changed, present, events)
    assert torch.allclose(before[:, 1:4], after[:, 1:4], atol=1e-5)
    assert not torch.allclose(before[:, 4:], after[:, 4:])



@pytest.mark.parametrize("tower", TOWER_NAMES)
def test_a_tower_that_says_it_ignores_left_padding_does(tower):
    """Batches of such towers are cut to their longest history (training and scoring cost follow
    the events): the states and candidate scores at present positions must not change with the
    amount of left padding; a recurrent tower must not claim it."""
    from mmrec.models.towers import padding_invariant

    torch.manual_seed(0)
    module = TOWERS.get(tower)(8, n_events=3, n_layers=2, n_heads=2, dropout=0.0, max_len=12).eval()
    if tower in ("gru", "lstm"):
        assert not padding_invariant(module)
        return
    assert padding_invariant(module)
    x = torch.randn(2, 5, 8)
    present = torch.tensor([[False, False, True, True, True], [True] * 5])
    events = torch.full((2, 5), 2)
    padded_x = torch.cat([torch.zeros(2, 7, 8), x], dim=1)
    padded_present = torch.cat([torch.zeros(2, 7, dtype=torch.bool), present], dim=1)
    padded_events = torch.cat([torch.zeros(2, 7, dtype=torch.long), events], dim=1)
    with torch.no_grad():
        short, long = module(x, present, events), module(padded_x, padded_present, padded_events)
        torch.testing.assert_close(long[:, 7:][present], short[present], atol=1e-5, rtol=1e-5)
        if hasattr(module, "candidate_scores"):
            candidates = torch.randn(4, 8)
            torch.testing.assert_close(module.candidate_scores(padded_x, padded_present, candidates)[:, 7:],
                                       module.candidate_scores(x, present, candidates), atol=1e-5, rtol=1e-5)


def test_a_model_scores_the_same_whatever_its_batches_width(demo_items, split, monkeypatch):
    """Cutting a scoring chunk to its longest history changes no score (short-term gate included)."""
    from mmrec.models.network import TwoTowerNet

    options = {**TINY, "max_len": 40}  # longer than every demo history
    model = mmrec.TwoTower(user_tower="transformer", epochs=1, short_term_events=3, **options)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    users = list(split.train.users)
    cut = model.score_items(split.train, users=users)
    assert model.net_.batch_width(model.history_lengths(split.train, users), 40) < 40
    monkeypatch.setattr(TwoTowerNet, "batch_width", lambda self, lengths, cap: cap)
    np.testing.assert_allclose(model.score_items(split.train, users=users), cut, atol=1e-4)


def test_the_whole_item_table_fused_in_blocks_equals_one_pass(demo_items, split, monkeypatch):
    import mmrec.models.network as network

    model = mmrec.TwoTower(epochs=1, **TINY).fit(demo_items, split.train, show_progress=False)
    net = model.net_.eval()
    with torch.no_grad():
        whole = net.item_vectors()
        content_only = net.item_vectors(content_only=True)
        monkeypatch.setattr(network, "ITEM_BLOCK_ROWS", 7)
        blocked = net.item_vectors()
        assert blocked[0].shape == whole[0].shape and len(whole[0]) > 7
        torch.testing.assert_close(blocked, whole)
        torch.testing.assert_close(net.item_vectors(content_only=True), content_only)


def test_users_scored_in_chunks_of_similar_length_get_what_they_got_in_order(monkeypatch):
    """More users than one scoring chunk, of varied history lengths: chunks of similar length (and
    cut to their longest history), or a few users a chunk against the whole table, change no
    vector, score, metric or predicted rating."""
    from mmrec.models.network import TwoTowerNet
    from mmrec.testing.worlds import clustered_world

    world = clustered_world(n_users=600, n_items=50, per_user=12).frame
    keep = np.random.default_rng(0).random(len(world)) < np.repeat(np.linspace(0.2, 1.0, 600), 12)
    events = mmrec.Interactions(world.loc[keep | world.duplicated("user", keep="last").eq(False)]
                                .reset_index(drop=True))
    split = mmrec.leave_last_out(events, n_test=1, n_valid=0, min_train=1)
    model = mmrec.TwoTower(user_tower="attention", dim=8, max_len=12, epochs=1, batch_size=64,
                           prior_users=0).fit(None, split.train, show_progress=False)
    users = list(split.train.users)
    pairs = split.test.frame[["user", "item"]]

    def outputs():
        return (model.encode_users(split.train, users=users).vectors,
                model.score_items(split.train, users=users),
                model.evaluate(split.train, split.test, ks=(5,)), model.predict_ratings(split.train, pairs))

    sorted_cut = outputs()
    monkeypatch.setattr(TwoTowerNet, "padding_invariant", property(lambda self: False))
    in_order = outputs()
    import mmrec.models.parts.network as network_module

    monkeypatch.setattr(network_module, "FULL_TABLE_CELLS", 7 * 50)  # 7 users a chunk against all items
    small_chunks = outputs()
    for other in (in_order, small_chunks):
        np.testing.assert_allclose(sorted_cut[0], other[0], atol=1e-5)
        np.testing.assert_allclose(sorted_cut[1], other[1], atol=1e-4)
        assert sorted_cut[2] == pytest.approx(other[2])
        np.testing.assert_allclose(sorted_cut[3], other[3], atol=1e-4)

def test_attention_tower_candidate_scores_equal_brute_force_attention():
    torch.manual_seed(0)
    tower = TOWERS.get("attention")(8, n_events=3, n_heads=2, max_len=5).eval()
    x, cand = torch.randn(1, 5, 8), torch.randn(3, 8)
    present = torch.tensor([[False, True, True, True, True]])
    with torch.no_grad():
        fast = tower.candidate_scores(x, present, cand)
        keys, values = tower._keys_values(x)
        for t in range(1, 5):
            for c in range(3):
                q = tower.query(cand[c]).view(2, 4)
                logits = torch.einsum("hk,lhk->hl", q, keys[0, 1 : t + 1]) / 2.0
                logits = logits + tower.position[1 : t + 1].T
                pooled = torch.einsum("hl,lhk->hk", logits.softmax(-1), values[0, 1 : t + 1]).reshape(8)
                assert fast[0, t, c].item() == pytest.approx(float(tower.out(pooled) @ cand[c]), abs=1e-4)


def sequential_world(seed: int = 0, n_topics: int = 8, n_items: int = 120, n_users: int = 160,
                     length: int = 16):
    """Items in topics (content = topic centre + noise); every user walks the topics in order
    (topic t is followed by topic t + 1), so what comes next depends on the order of the history,
    which pooling the history into one mean cannot see."""
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % n_topics
    centres = rng.normal(size=(n_topics, 24))
    vectors = (centres[topic] + 0.5 * rng.normal(size=(n_items, 24))).astype(np.float32)
    ids = [f"i{i}" for i in range(n_items)]
    items = mmrec.ItemVectors(ids, {"text": vectors}, {"text": np.ones(n_items, bool)})
    rows = []
    for user in range(n_users):
        current = rng.integers(n_topics)
        for step in range(length):
            rows.append((f"u{user}", ids[rng.choice(np.flatnonzero(topic == current))], step))
            current = (current + 1) % n_topics
    events = mmrec.Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    return items, events


@pytest.mark.parametrize("tower", ["gru", "transformer"])
def test_learned_model_beats_the_untrained_mean_baseline(tower):
    items, events = sequential_world()
    split = mmrec.leave_last_out(events)
    history = split.history
    index = mmrec.build_index(items, spec="Flat")
    baseline = mmrec.recommend(index, history, users=split.test.users, k=10)
    truth = dict(zip(split.test.frame["user"], split.test.frame["item"], strict=True))
    base_hit = np.mean([truth[u] in set(g["item"]) for u, g in baseline.groupby("user")])
    model = mmrec.TwoTower(user_tower=tower, fusion="gated", epochs=8, patience=8, lr=3e-3, dropout=0.1,
                           **{**TINY, "dim": 32})
    model.fit(items, split.train, valid=split.valid, show_progress=False)
    learned = model.evaluate(history, split.test, ks=(10,))["hit@10"]
    # 15 items per topic: knowing the next topic gives about 10/15 = 0.67; the mean about 0.1
    assert learned > max(0.4, 2 * base_hit), (learned, base_hit)


def test_validation_events_are_never_seen_in_training(demo_items, split, monkeypatch):
    """Leakage check: no (user, item, time) of the validation split reaches a training batch."""
    valid_keys = set(zip(split.valid.frame["user"], split.valid.frame["item"],
                         split.valid.frame["timestamp"], strict=True))
    seen_users: list[str] = []
    original = Histories.from_interactions.__func__

    def spy(cls, events, *args, **kwargs):
        histories = original(cls, events, *args, **kwargs)
        seen_users.append(events)
        return histories

    monkeypatch.setattr(Histories, "from_interactions", classmethod(spy))
    model = mmrec.TwoTower(user_tower="gru", epochs=1, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    trained_on = seen_users[0].frame
    train_keys = set(zip(trained_on["user"], trained_on["item"], trained_on["timestamp"], strict=True))
    assert len(trained_on) == len(split.train)
    assert not train_keys & valid_keys


def test_save_load_encode_identical_and_artifact_is_pickle_free(demo_items, split, tmp_path):
    model = mmrec.TwoTower(user_tower="transformer", fusion="attention", epochs=1,
                           short_term_events=3, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    model.save(tmp_path / "run")
    loaded = mmrec.TwoTower.load(tmp_path / "run")
    assert np.array_equal(loaded.encode_items(demo_items).fused, model.encode_items(demo_items).fused)
    assert np.array_equal(loaded.encode_users(split.train).vectors, model.encode_users(split.train).vectors)
    parts = ["content_blend", "manifest.json", "network"]  # no attributes, no prior (too few users)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == parts
    assert sorted(p.name for p in (tmp_path / "run" / "network").iterdir()) == [
        "ids.json", "manifest.json", "state.safetensors"]
    manifest = json.loads((tmp_path / "run" / "network" / "manifest.json").read_text())
    assert manifest["params"]["config"]["user_tower"] == "transformer"
    assert manifest["plain"]["history"]["epochs"]
    (tmp_path / "run" / "network" / "ids.json").write_text("[]")
    with pytest.raises(mmrec.ArtifactError, match="checksum"):
        mmrec.TwoTower.load(tmp_path / "run")


@pytest.mark.parametrize("sparse_ids", [False, True])  # True: lazy Adam on the per-item tables
def test_training_is_deterministic_and_resumes_to_the_same_weights(demo_items, split, tmp_path, sparse_ids):
    def run(epochs, folder=None):
        model = mmrec.TwoTower(user_tower="dnn", epochs=epochs, patience=10, seed=3, sparse_ids=sparse_ids,
                               **TINY)
        return model.fit(demo_items, split.train, valid=split.valid, checkpoint_dir=folder,
                         show_progress=False)

    straight = run(3)
    again = run(3)
    assert np.array_equal(straight.encode_items().fused, again.encode_items().fused)
    run(2, tmp_path / "ckpt")  # "interrupted" after two epochs, checkpoint kept
    resumed = run(3, tmp_path / "ckpt")
    assert [e["epoch"] for e in resumed.history_.epochs] == [1, 2, 3]
    assert np.allclose(resumed.encode_items().fused, straight.encode_items().fused, atol=1e-6)


def test_sparse_item_tables_take_adams_step_on_the_rows_a_step_touches_only():
    from torch import nn

    from mmrec.models.optimizers import TrainOptimizer

    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.id_embedding, self.rating_bias = nn.Embedding(50, 4), nn.Embedding(50, 1)
            self.head = nn.Linear(4, 1)

    def steps(sparse, batches):
        torch.manual_seed(0)
        net = Net()
        optimizer = TrainOptimizer(net, lr=0.1, weight_decay=0.0, sparse=sparse)
        with optimizer.sparse_gradients():
            for rows in batches:
                optimizer.zero_grad()
                rows = torch.tensor(rows)
                (net.head(net.id_embedding(rows)).sum() + net.rating_bias(rows).sum()).backward()
                optimizer.step()
        assert not net.id_embedding.sparse  # back to dense gradients after training
        return net, optimizer

    dense, _ = steps(False, [[1, 2, 3]])
    lazy, optimizer = steps(True, [[1, 2, 3]])
    for name, value in dense.state_dict().items():  # Adam's first step: the same update
        torch.testing.assert_close(lazy.state_dict()[name], value)
    dense, _ = steps(False, [[1, 2], [3]])
    lazy, optimizer = steps(True, [[1, 2], [3]])
    # dense Adam keeps moving rows 1, 2 on their momentum; lazy Adam leaves rows a step missed
    assert not torch.equal(dense.id_embedding.weight[1], lazy.id_embedding.weight[1])
    first, _ = steps(True, [[1, 2]])
    torch.testing.assert_close(lazy.id_embedding.weight[1], first.id_embedding.weight[1])
    state = optimizer.state_dict()  # one optimizer's layout: the tables numbered after the rest
    assert len(state["param_groups"]) == 2 and sorted(state["state"]) == [0, 1, 2, 3]
    fresh = TrainOptimizer(Net(), lr=0.1, weight_decay=0.0, sparse=True)
    fresh.load_state_dict(state)
    restored, saved = fresh.sparse.state_dict()["state"][0], optimizer.sparse.state_dict()["state"][0]
    assert torch.equal(restored["exp_avg"], saved["exp_avg"])


def test_new_items_are_encoded_from_content_and_id_only_models_refuse_them(demo_items, split):
    known = np.isin(demo_items.ids, split.train.frame["item"].unique())
    model = mmrec.TwoTower(user_tower="mean", epochs=1, **TINY)
    model.fit(demo_items, split.train.restrict_to_items(demo_items.ids[known]), show_progress=False)
    encoded = model.encode_items(demo_items)
    assert encoded.fused.shape == (len(demo_items), model.vector_dim)
    assert np.isfinite(encoded.fused).all()
    id_only = mmrec.TwoTower(user_tower="mean", epochs=1, **TINY).fit(None, split.train, show_progress=False)
    assert id_only.modality_weights().columns.tolist() == ["id"]
    fake = mmrec.ItemVectors(["brand-new"], {"text": np.ones((1, 4), np.float32)}, {"text": np.ones(1, bool)})
    with pytest.raises(mmrec.SchemaError, match="brand-new"):
        id_only.encode_items(fake)


def test_items_without_training_events_are_cold_content_only_and_never_candidates(demo_items, demo_events,
                                                                                tmp_path):
    split = mmrec.cold_item_split(demo_events, test_fraction=0.2, seed=0)
    cold = sorted(set(split.test.frame["item"]))
    model = mmrec.TwoTower(user_tower="mean", epochs=2, **TINY).fit(demo_items, split.train,
                                                                    show_progress=False)
    net = model.net_
    rows = model.item_ids_.get_indexer(cold)
    assert not net.trained[rows].any() and net.trained.sum() == split.train.frame["item"].nunique()
    before = model.encode_items(demo_items).fused
    with torch.no_grad():  # a cold item's id embedding plays no part in its vector
        net.id_embedding.weight[rows] += 5.0
    assert np.allclose(model.encode_items(demo_items).fused, before, atol=1e-6)
    assert model.modality_weights(demo_items).loc[cold, "id"].eq(0).all()
    from mmrec.models.training import _Batcher

    batcher = _Batcher(net, model.training, np.ones(net.n_items), torch.device("cpu"))
    candidates, _, _ = batcher._candidates(None, torch.tensor([0]), torch.Generator().manual_seed(0))
    assert net.trained[candidates].all()
    loaded = mmrec.TwoTower.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.net_.trained, net.trained)
    metrics = model.evaluate(split.history, split.test, ks=(20,))  # cold items are still ranked
    assert metrics["users"] > 0


def test_id_dropout_trains_the_content_only_path(demo_items, split, monkeypatch):
    """A share ``id_dropout`` of every step's candidates is scored by its content-only vector (what
    a cold item gets); histories keep their ids; models without content or ids never drop."""
    from mmrec.models.training import _Batcher

    changed: list[float] = []
    original = _Batcher._with_dropped_ids

    def spy(self, vectors, rows, generator):
        out = original(self, vectors, rows, generator)
        if out is not vectors:
            changed.append(float((out != vectors).any(dim=1).float().mean()))
        return out

    monkeypatch.setattr(_Batcher, "_with_dropped_ids", spy)
    mmrec.TwoTower(user_tower="mean", epochs=1, id_dropout=0.3, **TINY).fit(demo_items, split.train,
                                                                          show_progress=False)
    assert changed and 0.2 < np.mean(changed) < 0.4
    changed.clear()
    mmrec.TwoTower(user_tower="mean", epochs=1, id_dropout=0.3, **TINY).fit(None, split.train,
                                                                          show_progress=False)
    mmrec.TwoTower(user_tower="mean", epochs=1, id_dropout=0.0, **TINY).fit(demo_items, split.train,
                                                                          show_progress=False)
    assert not changed
    with pytest.raises(ConfigError, match="id_dropout"):
        mmrec.TwoTower(id_dropout=1.0)


def test_ratings_train_the_rating_head_and_index_roundtrip(demo_items, demo_events):
    frame = demo_events.frame
    frame["event"] = "rating"
    frame["value"] = np.where(frame["item"].str[-1].astype(int) % 2 == 0, 5.0, 1.0)
    rated = mmrec.Interactions(frame)
    model = mmrec.TwoTower(user_tower="dnn", epochs=2, rating_weight=1.0, **TINY)
    model.fit(demo_items, rated, show_progress=False)
    index = mmrec.build_index(model.encode_items(demo_items), spec="Flat")
    users = model.encode_users(rated)
    scores, idx = index.search(users.vectors[:2], 5)
    assert (idx >= 0).all() and scores.shape == (2, 5)
    exact = model.recommend(rated, users=users.user_ids[:2].tolist(), k=5)
    assert len(exact) == 10 and not exact.merge(frame, on=["user", "item"]).shape[0]


def test_configuration_errors_are_clear(demo_items, demo_events):
    with pytest.raises(ConfigError, match="unknown option"):
        mmrec.TwoTower(n_layer=2)
    with pytest.raises(UnknownNameError, match="transformer"):
        mmrec.TwoTower(user_tower="transfomer", **TINY).fit(demo_items, demo_events, epochs=1)
    with pytest.raises(ConfigError, match="item_ids"):
        mmrec.TwoTower(item_ids=False).fit(None, demo_events)
    with pytest.raises(NotFittedError):
        mmrec.TwoTower().encode_users(demo_events)


def test_histories_windows_cover_every_target_once():
    frame = pd.DataFrame({"user_id": ["a"] * 7 + ["b"], "item_id": list("abcdefgh"), "timestamp": range(8)})
    events = mmrec.Interactions.from_frame(frame)
    hist = Histories.from_interactions(events, pd.Index(list("abcdefgh")), EventVocabulary(("interaction",)),
                                       event_weights=mmrec.EventWeights())
    spans = hist.windows(3)
    targets = [row for start, stop in spans.tolist() for row in range(start + 1, stop)]
    assert sorted(targets) == list(range(1, 7))  # a's 2nd..7th events; b's single event is no target
    batch = hist.batch(spans, 4)
    assert batch.items.shape == (len(spans), 4) and (batch.items[:, -1] > 0).all()



def test_length_buckets_keep_every_window_once_and_group_similar_lengths():
    from mmrec.models.training import length_bucketed

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 200, 1000)
    order = rng.permutation(1000)
    batches = length_bucketed(order, lengths, 32, 8, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))  # each window once
    assert all(len(b) == 32 for b in batches[:-1]) and len(batches[-1]) == 1000 % 32
    widths = [lengths[b].max() for b in batches]
    assert np.mean(widths) < 0.7 * np.mean([lengths[order[i : i + 32]].max() for i in range(0, 1000, 32)])
    first = [lengths[b].mean() for b in batches[:10]]
    assert np.std(first) > 20  # the batch order is shuffled, not sorted by length
    again = length_bucketed(order, lengths, 32, 8, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_bucketed_steps_are_normalised_by_the_epochs_mean_batch(demo_events):
    """With length buckets every target weighs the same: the normaliser is the mean over the
    epoch's batches of what each batch holds (target weights, targets, rated targets)."""
    from mmrec.models.training import length_bucketed, mean_batch_totals

    ids = pd.Index(pd.unique(demo_events.frame["item"]))
    vocabulary = EventVocabulary(tuple(sorted(set(demo_events.frame["event"]))))
    hist = Histories.from_interactions(demo_events, ids, vocabulary, event_weights=mmrec.EventWeights())
    spans = hist.windows(7)
    batches = length_bucketed(np.random.default_rng(0).permutation(len(spans)), spans[:, 1] - spans[:, 0],
                              8, 4, np.random.default_rng(1))
    sums = []
    for batch_windows in batches:
        batch = hist.batch(spans[batch_windows], 8)
        inputs, targets = batch.shifted()
        keep = targets.mask & inputs.mask & (targets.weights > 0)
        sums.append([float(targets.weights[keep].sum()), float(keep.sum()),
                     float((keep & (targets.rated > 0)).sum())])
    np.testing.assert_allclose(mean_batch_totals(hist, spans, batches), np.mean(sums, axis=0), rtol=1e-5)
    assert np.mean(sums, axis=0)[2] > 0  # the demo log has ratings: all three normalisers are checked


def test_length_bucketed_training_learns_and_recurrent_towers_keep_full_width(demo_items, split, monkeypatch):
    from mmrec.models.histories import Histories as Hist

    widths: list[int] = []
    real = Hist.batch
    monkeypatch.setattr(Hist, "batch", lambda self, spans, length, users=None: (
        widths.append(length), real(self, spans, length, users))[1])
    options = {**TINY, "max_len": 40}
    model = mmrec.TwoTower(user_tower="transformer", epochs=3, patience=3, length_buckets=4, pack=False,
                           **options)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    losses = [e["loss"] for e in model.history_.epochs]
    assert losses[-1] < losses[0] and min(widths) < 41  # batches cut below max_len + 1
    widths.clear()
    mmrec.TwoTower(user_tower="gru", epochs=1, length_buckets=4, **options).fit(
        demo_items, split.train, valid=split.valid, show_progress=False)
    assert set(widths) <= {41, 40}  # training windows (max_len + 1) and scoring chunks (max_len)

def test_first_fit_rows_place_every_piece_once_inside_its_row():
    from mmrec.models.histories import first_fit_rows

    sizes = np.random.default_rng(0).integers(1, 21, 50)
    rows, ends = first_fit_rows(sizes, 20)
    for row in np.unique(rows):
        taken = np.zeros(20, int)
        for piece in np.flatnonzero(rows == row):
            assert 0 <= ends[piece] - sizes[piece] and ends[piece] <= 20
            taken[ends[piece] - sizes[piece] : ends[piece]] += 1
        assert taken.max() == 1  # no column holds two pieces
    assert rows.max() + 1 <= int(np.ceil(sizes.sum() / 20 * 1.25)) + 1  # first fit: few rows
    assert rows.max() + 1 < len(sizes)


@pytest.mark.parametrize("tower", ["transformer", "mean", "dnn"])
def test_a_packed_batch_gives_each_window_the_loss_and_states_it_has_alone(demo_items, demo_events, tower):
    """Several short windows in one row (block-diagonal causal attention, positions and pooling per
    window, short-term gate and user attributes per window) compute what each computes in its own
    row: the step loss and every target's state agree; a mask that lets windows see each other
    fails it."""
    from mmrec.models.training import _Batcher

    users = pd.DataFrame({"user": pd.unique(demo_events.frame["user"])})
    users["group"] = [f"g{i % 3}" for i in range(len(users))]
    model = mmrec.TwoTower(user_tower=tower, epochs=1, short_term_events=3, id_dropout=0.0,
                           **{**TINY, "max_len": 12, "dropout": 0.0})
    model.fit(demo_items, demo_events, users=users, show_progress=False)
    net = model.net_.eval()
    assert net.packable
    hist = model.histories(demo_events)
    spans = hist.windows(12)[:24]
    packed = hist.packed_batch(spans, 13)
    alone = hist.batch(spans, 13)
    assert packed.items.shape[0] < len(spans)  # windows share rows
    codes = model.attributes.codes(hist.user_ids)
    assert codes is not None and net.attributes is not None
    popularity = np.ones(net.n_items)
    for loss in ("full", "sampled"):
        config = dataclasses.replace(model.training, loss=loss, n_negatives=16)
        batcher = _Batcher(net, config, popularity, torch.device("cpu"), user_codes=codes)
        with torch.no_grad():
            got = [batcher.loss(b, torch.Generator().manual_seed(3)) for b in (packed, alone)]
        assert got[0][1] == got[1][1] > 0  # the same targets
        torch.testing.assert_close(got[0][0], got[1][0], atol=1e-5, rtol=1e-5)
    table, _ = net.item_vectors()
    with torch.no_grad():
        states = {}
        for name, batch in (("packed", packed), ("alone", alone)):
            inputs, targets = batch.shifted()
            keep = targets.mask & inputs.mask
            order = torch.argsort(inputs.owners()[keep] * 1000 + targets.items[keep], stable=True)
            states[name] = net.user_states(inputs, table)[0][keep][order]
        torch.testing.assert_close(states["packed"], states["alone"], atol=1e-5, rtol=1e-5)
        if tower == "transformer":  # windows that see each other compute something else
            inputs, targets = packed.shifted()
            leaky = type(inputs)(*(getattr(inputs, f) for f in ("items", "events", "values", "gaps",
                                                                   "hours", "weights", "rated")),
                                 users=inputs.users, segments=(inputs.segments > 0).long())
            keep = targets.mask & inputs.mask
            order = torch.argsort(inputs.owners()[keep] * 1000 + targets.items[keep], stable=True)
            mixed = net.user_states(leaky, table)[0][keep][order]
            assert not torch.allclose(mixed, states["alone"], atol=1e-3)


def test_a_sampled_step_reads_a_compact_table_and_computes_the_full_tables_loss(demo_items, demo_events):
    """The sampled softmax fuses only the rows a step touches and renumbers the history into them;
    its loss is the one read off the whole fused table (ratings head included)."""
    from mmrec.models.losses import rating_mse, sampled_softmax_loss
    from mmrec.models.training import _Batcher

    model = mmrec.TwoTower(user_tower="transformer", epochs=1, id_dropout=0.0, loss="sampled", n_negatives=8,
                           **{**TINY, "max_len": 12, "dropout": 0.0})
    model.fit(demo_items, demo_events, show_progress=False)
    net = model.net_.eval()
    hist = model.histories(demo_events)
    batch = hist.packed_batch(hist.windows(12)[:24], 13)
    config = model.training
    batcher = _Batcher(net, config, np.ones(net.n_items), torch.device("cpu"))
    with torch.no_grad():
        got, _ = batcher.loss(batch, torch.Generator().manual_seed(5))
        inputs, targets = batch.shifted()
        keep = targets.mask & inputs.mask & (targets.weights > 0)
        rated = keep & (targets.rated > 0)
        target_rows = targets.items[keep] - 1
        rows, positives, log_q = batcher._candidates(inputs, target_rows, torch.Generator().manual_seed(5))
        assert len(rows) < net.n_items  # a compact table is smaller than the catalog
        table, _ = net.item_vectors()
        states = net.user_states(inputs, table)[0]
        weights = targets.weights[keep]
        expected = sampled_softmax_loss(net.logits(states[keep], table[rows]), positives, log_q, weights,
                                        weights.sum())
        item_rows = targets.items[rated] - 1
        expected = expected + config.rating_weight * rating_mse(
            net.predicted_rating(states[rated], table[item_rows], item_rows), targets.values[rated],
            normalizer=rated.sum().float())
    assert bool(rated.any())  # the demo log has ratings: the rating head's lookup is checked too
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_sampled_softmax_and_short_term_gate_train(demo_items, split):
    model = mmrec.TwoTower(user_tower="transformer", loss="sampled", n_negatives=32, short_term_hours=24.0,
                           epochs=2, patience=5, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    losses = [e["loss"] for e in model.history_.epochs]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    assert model.net_.gate is not None


def test_a_checkpoint_from_another_configuration_is_refused(demo_items, split, tmp_path):
    mmrec.TwoTower(user_tower="mean", epochs=1, **TINY).fit(
        demo_items, split.train, checkpoint_dir=tmp_path / "ckpt", show_progress=False)
    with pytest.raises(ConfigError, match="different model configuration"):
        mmrec.TwoTower(user_tower="gru", epochs=1, **TINY).fit(
            demo_items, split.train, checkpoint_dir=tmp_path / "ckpt", show_progress=False)


def test_attention_tower_last_position_shortcut_matches_the_full_pass():
    torch.manual_seed(1)
    tower = TOWERS.get("attention")(8, n_events=3, n_heads=2, max_len=6).eval()
    x, cand = torch.randn(3, 6, 8), torch.randn(5, 8)
    present = torch.tensor([[False, False, True, True, True, True]] * 3)
    with torch.no_grad():
        full = tower.candidate_scores(x, present, cand)[:, -1]
        last = tower.candidate_scores(x, present, cand, last_only=True)[:, -1]
    assert torch.allclose(full, last, atol=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_fusions_start_from_the_content_geometry(fusion):
    """Untrained, concat and attention fusion mix the tokens like a mean (not a random projection),
    so training refines the content similarity instead of first having to rediscover it."""
    from mmrec.models.fusion_layers import FUSIONS

    torch.manual_seed(0)
    tokens = torch.randn(6, 3, 8)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1]]).bool()
    fused, weights = FUSIONS.get(fusion)(3, 8).eval()(tokens, present)
    masked = tokens * present.unsqueeze(-1)
    mean = masked.sum(1) / present.sum(1, keepdim=True)
    assert torch.nn.functional.cosine_similarity(fused, mean).min() > 0.99
    assert torch.allclose(weights.sum(1), torch.ones(6), atol=1e-5)


def test_a_time_budget_ends_training_between_epochs():
    from mmrec.testing.worlds import clustered_world

    world = clustered_world(n_users=40)
    model = mmrec.TwoTower(dim=8, user_tower="mean", epochs=5, patience=5, prior_users=0,
                           time_budget_s=1e-6).fit(None, world)
    assert len(model.history_.epochs) == 1  # the first epoch always runs; the next would overrun
    assert model.history_.out_of_time and not model.history_.stopped_early
    roomy = mmrec.TwoTower(dim=8, user_tower="mean", epochs=2, patience=5, prior_users=0,
                           time_budget_s=3600.0).fit(None, world)
    assert len(roomy.history_.epochs) == 2 and not roomy.history_.out_of_time
    with pytest.raises(ConfigError, match="time_budget_s"):
        mmrec.TwoTower(time_budget_s=0.0)
