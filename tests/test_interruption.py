"""Interrupted runs resume to the same result, and a half-written artifact is never loaded.

Real ``mmrec encode`` and ``mmrec train`` processes are stopped part-way (SIGINT = Ctrl-C, SIGKILL =
the machine or the OOM killer) once their committed progress shows it (rows in the encode cache,
epochs in the checkpoint), then run again; the outputs must equal an uninterrupted run's and the
second run must have done less work.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors.numpy import load_file

import mmrec
from mmrec.errors import ArtifactError
from mmrec.utils.io import MANIFEST, atomic_directory, leftovers

N_ITEMS = 144  # 36 batches: a signal sent after the 4th lands long before the end
EPOCHS = 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGKILL, id="SIGKILL")]


def mmrec_command(*args: str | Path) -> list[str]:
    """The ``mmrec`` console command, run by this test's interpreter."""
    return [sys.executable, "-m", "mmrec.cli", *map(str, args)]


def run_to_end(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(command: list[str], cwd: Path, signum: int, ready) -> tuple[int, str, int]:
    """Start ``command``, send ``signum`` as soon as ``ready()`` returns a number > 0 (the committed
    progress), return ``(exit code, stderr, progress when signalled)``."""
    log = cwd / f"stderr-{signal.Signals(signum).name}-{time.monotonic_ns()}.txt"
    with open(log, "w") as err:
        # the default SIGINT action in the child, whatever this process inherited (a shell starts
        # background jobs with SIGINT ignored, and a child would inherit that and never stop)
        process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=err,
                                   preexec_fn=_default_sigint)
        deadline = time.monotonic() + 90
        progress = 0
        try:
            while process.poll() is None and time.monotonic() < deadline:
                progress = ready()
                if progress:
                    process.send_signal(signum)
                    break
                time.sleep(0.02)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert progress, f"the run finished before it could be interrupted:\n{log.read_text()[-2000:]}"
    return code, log.read_text(), progress


# ----------------------------------------------------------------------------- workload
@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small noise images (a CNN at 224 px makes encoding take a few seconds) and a click log."""
    root = tmp_path_factory.mktemp("interruption")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(N_ITEMS):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"i{i}.png")
    pd.DataFrame({"item_id": [f"i{i}" for i in range(N_ITEMS)],
                  "image_path": [f"images/i{i}.png" for i in range(N_ITEMS)]}).to_csv(
        root / "items.csv", index=False)
    rows = []
    for u in range(120):
        favourites = rng.integers(0, N_ITEMS, size=5)
        clock = 1.7e9 + rng.uniform(0, 1e6)
        for _ in range(int(rng.integers(15, 40))):
            clock += rng.exponential(3600)
            item = rng.choice(favourites) if rng.random() < 0.7 else rng.integers(N_ITEMS)
            rows.append({"user_id": f"u{u}", "item_id": f"i{item}", "timestamp": round(clock, 1),
                         "event": "click"})
    pd.DataFrame(rows).to_csv(root / "events.csv", index=False)
    return root


def encode_command(root: Path, out: str, cache: str) -> list[str]:
    return mmrec_command("encode", root / "items.csv", "--out", out, "--cache", cache, "--text", "none",
                         "--audio", "none", "--image", "image-mobilenet-v3-small", "--batch-size", "4",
                         "--workers", "0", "--threads", "1", "--device", "cpu")


def train_command(root: Path, out: str) -> list[str]:
    config = root / f"{out}.yaml"
    config.write_text(
        f"events: events.csv\nitems: reference-vectors\nout: {out}\n"
        "split: {kind: leave_last_out, n_test: 1, n_valid: 1}\n"
        "model: {user_tower: gru, fusion: gated, dim: 16, max_len: 20, n_layers: 1}\n"
        f"training: {{epochs: {EPOCHS}, batch_size: 4, patience: 10, device: cpu}}\nks: [10]\n")
    return mmrec_command("train", "--config", config)


@pytest.fixture(scope="module")
def reference(workload: Path) -> Path:
    """Uninterrupted runs: ``reference-vectors`` (encode) and ``reference-run`` (train)."""
    run_to_end(encode_command(workload, "reference-vectors", "reference-cache"), workload)
    run_to_end(train_command(workload, "reference-run"), workload)
    return workload


def cache_rows(cache: Path):
    def rows() -> int:
        try:
            with sqlite3.connect(f"file:{cache / 'cache.sqlite'}?mode=ro", uri=True, timeout=1) as db:
                return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except sqlite3.Error:  # not created yet
            return 0
    return rows


def checkpoint_epochs(folder: Path, at_least: int):
    def epochs() -> int:
        try:
            done = len(json.loads((folder / "progress.json").read_text("utf-8"))["epochs"])
        except (OSError, ValueError):
            return 0
        return done if done >= at_least else 0
    return epochs


def check_stopped(code: int, stderr: str, signum: int, stage: str, resume_from: str) -> None:
    if signum == signal.SIGINT:
        assert code == 130, stderr[-3000:]
        assert f"interrupted: {stage}; re-run the same command to resume from {resume_from}" in stderr
        assert "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL


# ----------------------------------------------------------------------------- encode
@pytest.mark.parametrize("signum", SIGNALS)
def test_interrupted_encode_resumes_from_the_cache_to_the_same_vectors(reference, signum):
    root, cache = reference, reference / f"cache-{signum.name}"
    command = encode_command(root, f"vectors-{signum.name}", cache.name)
    code, stderr, _ = interrupt_when(command, root, signum, lambda: cache_rows(cache)() >= 16)
    committed = cache_rows(cache)()
    check_stopped(code, stderr, signum, "encode", f"the encode cache {cache.name} ({committed} vectors")
    assert committed < N_ITEMS
    out = root / f"vectors-{signum.name}"
    assert not out.exists(), "a killed encode never leaves a partial output folder"
    if signum == signal.SIGKILL:  # its temporary folder is left behind, never mistaken for the output
        assert leftovers(out)
        with pytest.raises(ArtifactError, match="unfinished save"):
            mmrec.ItemVectors.load(out)
    else:
        assert not leftovers(out)

    run_to_end(command, root)
    assert not leftovers(out)
    resumed, straight = mmrec.ItemVectors.load(out), mmrec.ItemVectors.load(root / "reference-vectors")
    assert committed <= resumed.report.cache_hits["image"] < N_ITEMS  # it resumed, it did not restart
    assert straight.report.cache_hits["image"] == 0
    np.testing.assert_allclose(resumed.vectors["image"], straight.vectors["image"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed.fused, straight.fused, rtol=0, atol=1e-6)
    assert resumed.masks["image"].all()


# ----------------------------------------------------------------------------- train
@pytest.mark.parametrize("signum", SIGNALS)
def test_interrupted_training_resumes_from_its_checkpoint_to_the_same_model(reference, signum):
    root, out = reference, f"run-{signum.name}"
    command = train_command(root, out)
    checkpoint = root / out / "checkpoint"
    code, stderr, epochs = interrupt_when(command, root, signum, checkpoint_epochs(checkpoint, 1))
    saved = len(json.loads((checkpoint / "progress.json").read_text())["epochs"])
    check_stopped(code, stderr, signum, "train", f"the checkpoint after epoch {saved} in {checkpoint}")
    assert 1 <= epochs <= saved < EPOCHS
    assert not (root / out / "model").exists()

    done = run_to_end(command, root)
    assert f"resuming from {checkpoint} after epoch {saved}" in done.stderr
    assert f"epoch {saved}: loss" not in done.stderr and f"epoch {saved + 1}: loss" in done.stderr
    straight, resumed = root / "reference-run", root / out
    ref_weights, weights = load_file(straight / "model" / "network" / "state.safetensors"), load_file(
        resumed / "model" / "network" / "state.safetensors")
    assert ref_weights.keys() == weights.keys()
    for name in ref_weights:
        np.testing.assert_allclose(weights[name], ref_weights[name], rtol=0, atol=1e-6, err_msg=name)
    ref_metrics = json.loads((straight / "metrics.json").read_text())
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["test"] == pytest.approx(ref_metrics["test"], abs=1e-6)
    assert [e["epoch"] for e in metrics["training"]["epochs"]] == list(range(1, EPOCHS + 1))
    np.testing.assert_allclose(mmrec.ItemVectors.load(resumed / "item_vectors").fused,
                               mmrec.ItemVectors.load(straight / "item_vectors").fused, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- half-written artifacts
@pytest.fixture
def items() -> mmrec.ItemVectors:
    rng = np.random.default_rng(0)
    vectors = {"text": rng.normal(size=(50, 8)).astype(np.float32)}
    return mmrec.ItemVectors([f"item{i}" for i in range(50)], vectors, {"text": np.ones(50, bool)})


@pytest.fixture
def saved(items, tmp_path) -> Path:
    return items.save(tmp_path / "vecs")


def test_a_truncated_file_is_refused_even_without_checksums(saved):
    fused = saved / "fused.npy"
    fused.write_bytes(fused.read_bytes()[: fused.stat().st_size // 2])
    for verify in (True, False):
        with pytest.raises(ArtifactError, match=r"fused\.npy does not match its checksum.*half-written"):
            mmrec.ItemVectors.load(saved, mmap=True, verify=verify)


def test_a_same_size_edit_is_caught_by_the_checksum(saved):
    ids = saved / "ids.json"
    ids.write_text(ids.read_text().replace("item", "itex", 1))
    with pytest.raises(ArtifactError, match=r"ids\.json does not match its checksum.*tampered"):
        mmrec.ItemVectors.load(saved)


def test_a_folder_without_manifest_or_with_unlisted_files_is_refused(saved):
    manifest = json.loads((saved / MANIFEST).read_text())
    del manifest["files"]["report.json"]
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"report\.json is not listed in manifest\.json"):
        mmrec.ItemVectors.load(saved)
    (saved / MANIFEST).write_text(json.dumps(manifest)[:-20])
    with pytest.raises(ArtifactError, match="not valid JSON"):
        mmrec.ItemVectors.load(saved)
    (saved / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        mmrec.ItemVectors.load(saved)


def test_other_kinds_and_newer_format_versions_are_refused(saved, tmp_path):
    with pytest.raises(ArtifactError, match="holds a 'item_vectors' artifact, not 'item_index'"):
        mmrec.ItemIndex.load(saved)
    manifest = json.loads((saved / MANIFEST).read_text())
    (saved / MANIFEST).write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(ArtifactError, match="format_version 2.*upgrade mmrec"):
        mmrec.ItemVectors.load(saved)
    legacy = {k: v for k, v in manifest.items() if k not in ("format", "sizes")}
    (saved / MANIFEST).write_text(json.dumps({"kind": "item_vectors", **legacy}))  # before format names
    assert len(mmrec.ItemVectors.load(saved)) == manifest["n_items"]


def test_a_killed_save_leaves_the_old_artifact_and_a_temporary_the_next_save_removes(items, saved):
    killed = subprocess.run(  # a process that dies (SIGKILL) in the middle of re-saving the folder
        [sys.executable, "-c", "import os, signal, sys\nfrom mmrec.utils.io import atomic_directory\n"
         "with atomic_directory(sys.argv[1]) as tmp:\n    (tmp / 'fused.npy').write_bytes(b'half')\n"
         "    os.kill(os.getpid(), signal.SIGKILL)\n", str(saved)], env=ENV)
    assert killed.returncode == -signal.SIGKILL
    stray = leftovers(saved)
    assert len(stray) == 1 and stray[0].name.endswith(".tmp") and (stray[0] / "fused.npy").is_file()
    np.testing.assert_array_equal(mmrec.ItemVectors.load(saved).fused, items.fused)  # the old one
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        mmrec.ItemVectors.load(stray[0])  # the temporary itself is never a loadable artifact
    items.save(saved)
    assert not stray[0].exists() and not leftovers(saved)


def test_an_interrupted_swap_puts_the_old_folder_back(saved, monkeypatch):
    real_replace = os.replace

    def interrupted(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    before = (saved / "fused.npy").read_bytes()
    monkeypatch.setattr("mmrec.utils.io.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_directory(saved) as tmp:
        (tmp / "fused.npy").write_bytes(b"new")
    monkeypatch.undo()
    assert (saved / "fused.npy").read_bytes() == before and not leftovers(saved)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["vecs"]
    mmrec.ItemVectors.load(saved)
