import subprocess
import sys

import pandas as pd
import pytest

import mmrec
from mmrec.cli import build_parser, main

COMMANDS = ["demo", "encode", "train", "evaluate", "index", "recommend", "encoders"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mmrec" in out
    if command is None:
        assert all(c in out for c in COMMANDS)


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "mmrec.cli", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.startswith("mmrec ")


def test_encode_index_recommend_end_to_end(demo, tmp_path, capsys):
    items, index, recs = tmp_path / "items", tmp_path / "index", tmp_path / "recs.csv"
    assert main(["-q", "encode", str(demo.catalog), "--out", str(items), "--image",
                 "image-mobilenet-v3-small", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "image: " in out and "item0003 [image]: not a readable image" in out
    assert main(["-q", "index", str(items), "--out", str(index)]) == 0
    assert "spec='Flat'" in capsys.readouterr().out
    assert main(["-q", "recommend", "--index", str(index), "--events", str(demo.events),
                 "--users", "user000", "user001", "--k", "4", "--catalog", str(demo.catalog),
                 "--out", str(recs)]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(recs)
    assert table.groupby("user").size().to_dict() == {"user000": 4, "user001": 4}
    title = pd.read_csv(demo.catalog).set_index("item_id").loc[table["item"].iloc[0], "title"]
    assert title in out  # titles are printed next to the ids


def test_skipping_a_modality_and_choosing_a_spec(demo, tmp_path, capsys):
    items = tmp_path / "items"
    assert main(["-q", "encode", str(demo.catalog), "--out", str(items), "--image", "none",
                 "--audio", "none", "--text", "text-tfidf-svd"]) == 0
    assert "dims={'text': 128}" in capsys.readouterr().out
    assert main(["-q", "index", str(items), "--out", str(tmp_path / "ix"), "--spec", "HNSW16"]) == 0
    assert "HNSW16" in capsys.readouterr().out


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "mmrec encode: error:" in err and "does not exist" in err
    assert main(["recommend", "--index", str(tmp_path), "--events", "e.csv"]) == 2
    assert "manifest.json is missing" in capsys.readouterr().err


def test_encoders_lists_presets(capsys):
    assert main(["encoders", "--modality", "audio"]) == 0
    out = capsys.readouterr().out
    assert "audio-mfcc-stats" in out and "text-tfidf-svd" not in out


def test_demo_command_runs_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out_dir), "--items", "96", "--users", "16",
                 "--k", "3", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "topic hit rate" in out and "likes" in out and "[content]" in out
    assert "trained two-tower" in out and "mean modality weights" in out
    assert mmrec.TwoTower.load(out_dir / "model").config.user_tower == "transformer"
    recs = pd.read_csv(out_dir / "recommendations.csv")
    assert recs["user"].nunique() == 16
    assert (out_dir / "index" / "manifest.json").is_file()
    assert build_parser().parse_args(["demo"]).out == "mmrec-demo"


def test_encode_with_cache_reuses_vectors(demo, tmp_path, capsys):
    args = ["-q", "encode", str(demo.catalog), "--image", "none", "--audio", "audio-mfcc-stats",
            "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    from mmrec import ItemVectors

    second = ItemVectors.load(tmp_path / "b")
    assert second.report.cache_hits["audio"] == second.report.counts["audio"]["encoded"] > 0


def test_index_with_recall_target_and_filtered_recommend(demo, tmp_path, capsys):
    items, index = tmp_path / "items", tmp_path / "index"
    assert main(["-q", "encode", str(demo.catalog), "--out", str(items), "--image", "none",
                 "--text", "text-tfidf-svd"]) == 0
    assert main(["-q", "index", str(items), "--out", str(index), "--spec", "HNSW16",
                 "--target-recall", "0.9", "--catalog", str(demo.catalog)]) == 0
    assert "recall@10" in capsys.readouterr().out
    out = tmp_path / "recs.csv"
    assert main(["-q", "recommend", "--index", str(index), "--events", str(demo.events), "--k", "3",
                 "--where", "category=ocean,desert", "--out", str(out)]) == 0
    recs = pd.read_csv(out)
    category = pd.read_csv(demo.catalog).set_index("item_id")["category"]
    assert set(category[recs["item"]]) <= {"ocean", "desert"}
    assert main(["recommend", "--index", str(index), "--events", str(demo.events),
                 "--where", "nonsense"]) == 2
