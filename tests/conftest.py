"""Shared fixtures: a small generated demo and fast encoder settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmrec
from mmrec.datasets.demo import DemoData, make_demo
from mmrec.testing.worlds import FAST_IMAGE, fast_choice


@pytest.fixture
def fast_encoders() -> dict:
    """TF-IDF text, ResNet-18 at 64 px, MFCC statistics."""
    return fast_choice(mmrec.create_encoder("image-resnet18", overrides=FAST_IMAGE))


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return make_demo(tmp_path_factory.mktemp("demo"), n_items=160, n_users=40, seed=1)


@pytest.fixture(scope="session")
def demo_items(demo: DemoData) -> mmrec.ItemVectors:
    image = mmrec.create_encoder("image-resnet18", overrides=FAST_IMAGE)
    return mmrec.encode_items(mmrec.Catalog.from_path(demo.catalog), encoders=fast_choice(image))


@pytest.fixture(scope="session")
def demo_events(demo: DemoData) -> mmrec.Interactions:
    return mmrec.Interactions.from_path(demo.events)


@pytest.fixture
def write(tmp_path: Path):
    """Write bytes or text to a file under tmp_path and return its path."""

    def _write(name: str, content: bytes | str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, "utf-8")
        else:
            path.write_bytes(content)
        return path

    return _write


@pytest.fixture(scope="session")
def served_run(demo: DemoData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained run on disk as ``mmrec train`` leaves it (``model/``, ``item_vectors/``), its
    vectors made from presets so that new items can be encoded like the old ones."""
    presets = {"text": "text-tfidf-svd", "image": "image-mobilenet-v3-small", "audio": "audio-mfcc-stats"}
    items = mmrec.encode_items(mmrec.Catalog.from_path(demo.catalog), encoders=presets, show_progress=False)
    model = mmrec.TwoTower(user_tower="gru", dim=16, epochs=2, batch_size=16, seed=0)
    model.fit(items, mmrec.Interactions.from_path(demo.events), show_progress=False)
    root = tmp_path_factory.mktemp("run")
    model.save(root / "model")
    model.encode_items(items).save(root / "item_vectors")
    return root


# ----------------------------------------------------------------------------- hypothesis profiles
# `ci` (the default) is derandomized, so every run tries the same examples and a failure reproduces
# byte for byte; its example counts keep all of tests/test_properties*.py around a minute on 2 cores
# (50 examples a test took 94 s: a tenth of the suite).
# `thorough` explores far more (and new) inputs for a local bug hunt:
#     HYPOTHESIS_PROFILE=thorough OMP_NUM_THREADS=1 python -m pytest -q tests/test_properties*.py
# too_slow is suppressed: each example builds pandas frames, FAISS indexes or reads files, which is
# slow by hypothesis' standards but is exactly the code under test.
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, database=None, max_examples=30, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
