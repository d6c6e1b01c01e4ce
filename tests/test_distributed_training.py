"""`mmrec train` under torchrun: 2 processes (gloo, CPU) take the steps 1 process takes.

The 2 processes are 2 "nodes" (``--nnodes 2``, one launcher each, c10d rendezvous on localhost),
the multi-node path of docs/scaling.md.

Both runs use the same global batch; with dropout off the only difference left is the order in
which floats are summed (gradients averaged over processes, candidate tables gathered), so the loss
curves and the trained weights must agree to float tolerance — and would not if a process trained
on its own share only, saw other negatives, or normalised by its local batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import mmrec
from mmrec.cli import main

MODEL = {"user_tower": "transformer", "fusion": "gated", "dim": 16, "max_len": 12, "n_layers": 1,
         "n_heads": 2, "dropout": 0.0}
# the sampled softmax gathers every process's positives; the rating head sees explicit events
TRAINING = {"epochs": 3, "batch_size": 24, "loss": "sampled", "n_negatives": 64, "patience": 5,
            "seed": 3, "device": "cpu"}


def _config(tmp_path: Path, demo, name: str) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        f"events: {demo.events}\nitems: vectors\nout: {name}\n"
        "split: {kind: leave_last_out, n_test: 1, n_valid: 1}\n"
        f"model: {json.dumps(MODEL)}\ntraining: {json.dumps(TRAINING)}\nks: [10]\n")
    return config


def _torchrun_nodes(config: Path, nnodes: int) -> subprocess.CompletedProcess:
    """``mmrec train`` as ``nnodes`` torchrun launchers of one process each, meeting through the
    c10d rendezvous at a localhost endpoint — the multi-node command of docs/scaling.md with every
    "node" on this machine. The launchers' outputs joined."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", "--nproc_per_node=1",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=mmrec-test",
               "-m", "mmrec.cli", "-q", "train", "--config", str(config)]
    launchers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(nnodes)]
    outputs = [launcher.communicate(timeout=300) for launcher in launchers]
    code = max(launcher.returncode for launcher in launchers)
    return subprocess.CompletedProcess(command, code, "".join(o for o, _ in outputs),
                                       "".join(e for _, e in outputs))


@pytest.fixture(scope="module")
def runs(demo, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ddp")
    assert main(["-q", "encode", str(demo.catalog), "--out", str(tmp_path / "vectors"), "--image", "none",
                 "--audio", "audio-mfcc-stats"]) == 0
    single = _config(tmp_path, demo, "single")
    assert main(["-q", "train", "--config", str(single)]) == 0
    double = _config(tmp_path, demo, "double")
    done = _torchrun_nodes(double, 2)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp_path, done


def test_two_processes_follow_the_single_process_loss_curve(runs):
    tmp_path, done = runs
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    double = json.loads((tmp_path / "double" / "metrics.json").read_text())
    losses_1 = [e["loss"] for e in single["training"]["epochs"]]
    losses_2 = [e["loss"] for e in double["training"]["epochs"]]
    assert len(losses_1) == len(losses_2) == TRAINING["epochs"]
    assert losses_1[-1] < losses_1[0]  # it trains
    np.testing.assert_allclose(losses_2, losses_1, rtol=1e-4)
    np.testing.assert_allclose([e["valid"] for e in double["training"]["epochs"]],
                               [e["valid"] for e in single["training"]["epochs"]], atol=1e-6)
    assert done.stdout.count("best epoch") == 1  # rank 0 alone reports


def test_two_processes_end_with_the_single_process_model(runs, demo_events):
    # compared by what the models compute: a few parameters (a key bias, the bias of the gate's
    # softmax over modalities) get no gradient in exact arithmetic, so Adam turns float noise
    # into lr-sized steps on them, which change no output
    tmp_path, _ = runs
    items = mmrec.ItemVectors.load(tmp_path / "vectors")
    one = mmrec.TwoTower.load(tmp_path / "single" / "model")
    two = mmrec.TwoTower.load(tmp_path / "double" / "model")
    np.testing.assert_allclose(two.encode_items(items).fused, one.encode_items(items).fused, atol=1e-3)
    np.testing.assert_allclose(two.encode_users(demo_events).vectors,
                               one.encode_users(demo_events).vectors, atol=1e-3)
    weights = load_file(str(tmp_path / "double" / "model" / "network" / "state.safetensors"))
    assert not np.allclose(weights["net.log_scale"], np.log(1 / 0.07))  # trained, not the initial


FIT_SCRIPT = """
import json, sys
import mmrec
from mmrec.data.splits import make_split

events_csv, vectors, out, model, training = sys.argv[1:6]
events = mmrec.Interactions.from_path(events_csv)
split = make_split(events, {"kind": "leave_last_out", "n_test": 1, "n_valid": 1})
fitted = mmrec.TwoTower(**json.loads(model), **json.loads(training)).fit(
    mmrec.ItemVectors.load(vectors), split.train, valid=split.valid, show_progress=False)
fitted.save(out)  # rank 0 writes
print("fitted as rank", fitted.rank_)
"""


def test_a_plain_fit_script_under_torchrun_trains_data_parallel(runs, demo):
    # no init_process_group in the script: TwoTower.fit joins the group torchrun describes (alone,
    # both processes would be rank 0)
    tmp_path, _ = runs
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(demo.events), str(tmp_path / "vectors"), str(tmp_path / "script-model"),
               json.dumps(MODEL), json.dumps(TRAINING)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(done.stdout.split("\n")[:-1]) == ["fitted as rank 0", "fitted as rank 1"]
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    saved = json.loads((tmp_path / "script-model" / "network" / "manifest.json").read_text())
    np.testing.assert_allclose([e["loss"] for e in saved["plain"]["history"]["epochs"]],
                               [e["loss"] for e in single["training"]["epochs"]], rtol=1e-4)


def _fit_in_a_group_of_one(demo_items, split, device: str, backend: str, port: int) -> list[float]:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        return _fit(demo_items, split, device)
    finally:
        dist.destroy_process_group()


def _fit(demo_items, split, device: str) -> list[float]:
    training = {**TRAINING, "device": device, "epochs": 2, "amp": False}
    model = mmrec.TwoTower(**MODEL, **training).fit(demo_items, split.train, valid=split.valid,
                                                    show_progress=False)
    return [e["loss"] for e in model.history_.epochs]


def test_a_process_group_of_one_wraps_the_model_in_ddp_and_trains_the_same(demo_items, split):
    # the collectives (gather, sums, broadcast, barrier) and the DDP wrapper run, on gloo
    np.testing.assert_allclose(_fit_in_a_group_of_one(demo_items, split, "cpu", "gloo", 29561),
                               _fit(demo_items, split, "cpu"), rtol=1e-5)


@pytest.fixture(scope="module")
def split(demo_events):
    return mmrec.leave_last_out(demo_events, n_test=1, n_valid=1)
