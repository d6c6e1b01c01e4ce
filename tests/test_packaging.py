"""The built wheel ships what the code reads at run time: the encoder presets of the top-level
``encoders/`` folder (as ``mmrec/presets``), the shipped weights and the serve page."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("mmrec-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_every_encoder_preset(wheel):
    presets = sorted((ROOT / "encoders").glob("*.yaml"))
    assert presets
    for preset in presets:
        assert wheel.read(f"mmrec/presets/{preset.name}") == preset.read_bytes(), preset.name


def test_the_wheel_ships_weights_page_and_helpers(wheel):
    names = set(wheel.namelist())
    for path in [*(ROOT / "mmrec" / "weights").iterdir(), ROOT / "mmrec" / "serve" / "static" / "index.html"]:
        assert str(path.relative_to(ROOT)) in names
    assert {"mmrec/testing/worlds.py", "mmrec/py.typed"} <= names
    assert not [n for n in names if n.startswith("tests/")]


def test_the_wheel_ships_every_module(wheel):
    names = set(wheel.namelist())
    missing = [str(p.relative_to(ROOT)) for p in (ROOT / "mmrec").rglob("*.py")
               if str(p.relative_to(ROOT)) not in names]
    assert not missing, missing
    packages = {p.parent for p in (ROOT / "mmrec").rglob("*.py")}
    assert not [str(p) for p in packages if not (p / "__init__.py").exists()]
