"""The real-behaviour halves of the news and e-commerce examples, in their --quick mode, on generated
stand-ins of the wheels they read (same files, columns and quirks): they run end to end and print
every table, so the examples cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmrec.testing.packaged import write_book_crossing_wheel, write_ibm_wheel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, wheel: Path, *extra: str) -> str:
    command = [sys.executable, str(EXAMPLES / script / "run.py"), "--part", "real", "--quick", "--wheel",
               str(wheel), "--text", "text-tfidf-svd", "--threads", "1", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script, write, extra, tables", [
    ("news", write_ibm_wheel, (), ["random split", "cold items"]),
    ("ecommerce", write_book_crossing_wheel, ("--min-events", "3"),
     ["random split", "cold items", "their first 0 events", "their first 3 events"]),
])
def test_real_behaviour_example_quick(script, write, extra, tables, tmp_path):
    out = _run(script, write(tmp_path / f"{script}.whl"), *extra)
    for title in tables:
        assert title in out
    for model in ("popularity", "item-KNN", "EASE", "BPR-MF", "LightGCN", "content mean (no training)",
                  "two-tower gru, ids only", "two-tower gru, ids + text"):
        assert f"| {model} |" in out
    assert "total" in out
