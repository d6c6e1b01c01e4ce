"""The simulated-behaviour parts of the news, e-commerce and music examples, in their --quick mode,
on generated stand-ins of the data they fetch (the Lee corpus, the Tux Paint stamps, two game
soundtracks: same folders and formats): they run end to end and print their table and
recommendations, so the examples cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmrec.testing.example_data import write_lee_corpus, write_music, write_stamps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script, write, extra, content", [
    ("news", write_lee_corpus, ("--part", "simulated"), "text"),
    ("ecommerce", write_stamps, ("--part", "simulated", "--image", "image-mobilenet-v3-small"), "image"),
    ("music", write_music, (), "audio"),
])
def test_simulated_example_quick(script, write, extra, content, tmp_path):
    write(tmp_path)
    command = [sys.executable, str(EXAMPLES / script / "run.py"), "--quick", "--cache", str(tmp_path),
               "--text", "text-tfidf-svd", "--threads", "1", "--users", "60", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for model in ("popularity", "item-KNN", "BPR-MF", "content mean (no training)",
                  "two-tower gru, ids only", "two-tower gru, ids + content"):
        assert f"| {model} |" in out
    assert "mean modality weights of the learned fusion" in out and content in out.split("fusion:")[1]
    assert "because of:" in out and "total" in out
