"""`mmrec train` from a YAML/TOML config, then index and recommend with the trained model."""

from __future__ import annotations

import json

import pandas as pd

import mmrec
from mmrec.cli import main

TINY_MODEL = {"user_tower": "gru", "fusion": "gated", "dim": 16, "max_len": 20, "n_layers": 1}


def test_train_index_recommend_with_a_yaml_config(demo, tmp_path, capsys):
    vectors = tmp_path / "vectors"
    assert main(["-q", "encode", str(demo.catalog), "--out", str(vectors), "--image", "none",
                 "--audio", "audio-mfcc-stats"]) == 0
    config = tmp_path / "train.yaml"
    config.write_text(
        f"events: {demo.events}\nitems: vectors\nout: run\n"
        "split: {kind: leave_last_out, n_test: 1, n_valid: 1}\n"
        f"model: {json.dumps(TINY_MODEL)}\n"
        "training: {epochs: 2, batch_size: 32}\nks: [5, 10]\n")
    assert main(["-q", "train", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "recall@10" in out and "best epoch" in out
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"recall@5", "ndcg@10"} and len(metrics["training"]["epochs"]) == 2
    model = mmrec.TwoTower.load(run / "model")
    assert model.config.user_tower == "gru"
    assert main(["-q", "index", str(run / "item_vectors"), "--out", str(tmp_path / "index"),
                 "--spec", "Flat"]) == 0
    recs_file = tmp_path / "recs.csv"
    assert main(["-q", "recommend", "--index", str(tmp_path / "index"), "--events", str(demo.events),
                 "--model", str(run / "model"), "--k", "3", "--out", str(recs_file)]) == 0
    recs = pd.read_csv(recs_file)
    assert (recs["source"] == "model").all() and recs.groupby("user").size().eq(3).all()
    user = recs["user"].iloc[0]
    capsys.readouterr()
    assert main(["-q", "recommend", "--index", str(tmp_path / "index"), "--events", str(demo.events),
                 "--model", str(run / "model"), "--items", str(run / "item_vectors"), "--explain",
                 "--users", user, "--k", "2", "--catalog", str(demo.catalog)]) == 0
    shown = capsys.readouterr().out
    assert shown.count("because of:") == 2 and "text" in shown and "audio" in shown
    assert main(["recommend", "--index", str(tmp_path / "index"), "--events", str(demo.events),
                 "--explain", "--users", user]) == 2


def test_toml_config_resumes_from_its_checkpoint_and_rejects_unknown_keys(demo, tmp_path, capsys):
    config = tmp_path / "train.toml"
    config.write_text(f'events = "{demo.events}"\nout = "run"\n[model]\nuser_tower = "mean"\ndim = 8\n'
                      "[training]\nepochs = 1\n")
    assert main(["-q", "train", "--config", str(config)]) == 0
    assert main(["-q", "train", "--config", str(config), "--epochs", "2"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["training"]["epochs"]] == [1, 2]  # epoch 1 came from the checkpoint
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"events: {demo.events}\nmodel: {{user_towr: gru}}\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "user_towr" in capsys.readouterr().err
