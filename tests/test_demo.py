import subprocess
import sys
from pathlib import Path

import pandas as pd

from mmrec.datasets.demo import TOPICS, make_demo

ROOT = Path(__file__).parents[1]


def test_demo_is_deterministic_and_structured(tmp_path):
    a = make_demo(tmp_path / "a", n_items=32, n_users=6, seed=3)
    b = make_demo(tmp_path / "b", n_items=32, n_users=6, seed=3)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file()) == files
    assert any(f.suffix == ".png" for f in files) and any(f.suffix == ".wav" for f in files)
    for name in files:
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes(), name
    items = pd.read_csv(a.catalog)
    assert set(items["category"]) == {t.name for t in TOPICS}
    for row in items.itertuples():  # every item's tags are words of its own topic
        topic = next(t for t in TOPICS if t.name == row.category)
        assert set(row.tags.split()) <= set(topic.words)
    c = make_demo(tmp_path / "c", n_items=32, n_users=6, seed=4)
    assert (c.root / "events.csv").read_bytes() != (a.root / "events.csv").read_bytes()


def test_quickstart_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", str(tmp_path / "qs"),
         "--items", "48", "--users", "8"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "rank" in result.stdout and "user000" in result.stdout
