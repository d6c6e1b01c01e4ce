"""The served state is durable: events committed before their 2xx survive a restart (also a
``kill -9`` of a real ``mmrec serve``), added items come back, forgetting lasts, an events file is
imported once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import mmrec

pytest.importorskip("fastapi")

from mmrec.serve import ServeConfig, Service  # noqa: E402
from mmrec.serve.store import open_store  # noqa: E402

CONFIG = ServeConfig(category_column="category")


@pytest.fixture
def events_file(demo, tmp_path) -> Path:
    path = tmp_path / "events.csv"
    shutil.copy(demo.events, path)
    return path


def start(served_run, demo, events_file, state) -> Service:
    return Service.from_paths(served_run, demo.catalog, events=events_file, config=CONFIG, state=state)


def test_events_and_items_survive_a_restart_and_the_file_is_imported_once(
        served_run, demo, events_file, tmp_path):
    state = tmp_path / "state"
    first = start(served_run, demo, events_file, state)
    imported = first.store.event_count()
    assert imported == len(pd.read_csv(events_file))
    first.observe([{"user": "newcomer", "item": "item0003", "event": "click", "timestamp": 1.7e9},
                   {"user": "newcomer", "item": "item0009", "event": "like"}])  # no timestamp: now
    catalog = pd.read_csv(demo.catalog)
    twin = catalog.iloc[5]
    added = first.add_items([{"item_id": "fresh-9", "title": twin["title"], "body": twin["body"],
                              "image_path": twin["image_path"], "category": twin["category"]}])
    assert added["added"] == ["fresh-9"]
    first.observe([{"user": "newcomer", "item": "fresh-9"}])
    before = first.recommend("newcomer", 5)
    assert [e["item"] for e in first.history("newcomer")] == ["fresh-9", "item0009", "item0003"]
    first.store.close()

    again = start(served_run, demo, events_file, state)
    assert again.store.event_count() == imported + 3  # the file was not imported a second time
    assert [e["item"] for e in again.history("newcomer")] == ["fresh-9", "item0009", "item0003"]
    assert again.health()["items"] == first.health()["items"]  # the added item is back
    after = again.recommend("newcomer", 5)
    assert after["source"] == "online" and {c["item"] for c in after["items"]} & {
        c["item"] for c in before["items"]}


def test_forgetting_lasts_and_leaves_no_trace(served_run, demo, events_file, tmp_path):
    state = tmp_path / "state"
    old_copy = tmp_path / "old" / "events.csv"
    old_copy.parent.mkdir()
    shutil.copy(events_file, old_copy)
    service = start(served_run, demo, events_file, state)
    user = str(pd.read_csv(events_file)["user_id"].iloc[0])
    service.observe([{"user": user, "item": "item0001"}])
    assert service.forget(user) > 0
    service.store.close()
    assert user not in set(pd.read_csv(events_file)["user_id"].astype(str))  # rewritten atomically
    for path in [*state.rglob("*"), events_file]:
        if path.is_file():
            assert user.encode() not in path.read_bytes(), path  # only a salted hash is kept
    again = start(served_run, demo, events_file, state)
    assert user not in again.online.users() and again.history(user) == []
    again.store.close()
    # an old copy of the log, imported later, cannot bring the user back
    store = open_store(state)
    frame = mmrec.Interactions.from_path(old_copy).frame
    shutil.copy(old_copy, old_copy.with_name("renamed.csv"))  # same content elsewhere: known already
    assert store.import_events(old_copy.with_name("renamed.csv"), lambda path: frame) == 0
    (old_copy.parent / "edited.csv").write_text(old_copy.read_text() + f"{user},item0002,5e9,click,1\n")
    edited = mmrec.Interactions.from_path(old_copy.parent / "edited.csv").frame
    assert store.import_events(old_copy.parent / "edited.csv", lambda path: edited) == int(
        (edited["user"] != user).sum())
    assert user not in set(store.events()["user"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(served_run, demo, events_file, state, port) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmrec.cli", "serve", "--model", str(served_run), "--catalog",
               str(demo.catalog), "--events", str(events_file), "--state", str(state), "--port", str(port)]
    env = {key: value for key, value in os.environ.items() if key != "MMREC_API_TOKEN"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _wait(client, process, port) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        try:
            if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.3)
    raise AssertionError("mmrec serve did not start")


def test_acknowledged_events_survive_kill_9_of_a_real_server(served_run, demo, events_file, tmp_path):
    import httpx

    state, port = tmp_path / "state", _free_port()
    with httpx.Client(timeout=30) as client:
        server = _serve(served_run, demo, events_file, state, port)
        try:
            _wait(client, server, port)
            batch = [{"user": "durable", "item": f"item{i:04d}", "timestamp": 4e9 + i} for i in range(1, 6)]
            assert client.post(f"http://127.0.0.1:{port}/events", json=batch).status_code == 200
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        port = _free_port()
        server = _serve(served_run, demo, events_file, state, port)
        try:
            _wait(client, server, port)
            history = client.get(f"http://127.0.0.1:{port}/history/durable?n=10").json()["events"]
            assert [e["item"] for e in history] == [f"item{i:04d}" for i in range(5, 0, -1)]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def test_processes_sharing_a_store_see_each_others_writes(served_run, demo, events_file, tmp_path,
                                                          monkeypatch):
    import mmrec.serve.store as store_module

    monkeypatch.setattr(store_module, "SYNC_SECONDS", 0.0)
    state = tmp_path / "state"
    left = start(served_run, demo, events_file, state)
    right = start(served_run, demo, events_file, state)  # a second replica on the same store
    assert right.store.event_count() == left.store.event_count()  # the file was imported once
    left.observe([{"user": "roamer", "item": "item0004", "timestamp": 1.7e9},
                  {"user": "roamer", "item": "item0011", "timestamp": 1.7e9 + 1}])
    assert [e["item"] for e in right.history("roamer")] == ["item0011", "item0004"]
    assert right.recommend("roamer", 3)["source"] == "online"
    right.observe([{"user": "roamer", "item": "item0020", "timestamp": 1.7e9 + 2}])
    assert [e["item"] for e in left.history("roamer")] == ["item0020", "item0011", "item0004"]
    assert len(left.history("roamer")) == 3  # its own events are not fed back to it twice
    right.forget("roamer")
    assert left.history("roamer") == [] and "roamer" not in left.users(1000)


def test_reads_are_answered_while_a_large_write_is_applied(served_run, demo, events_file, tmp_path):
    import threading

    service = start(served_run, demo, events_file, tmp_path / "state")
    known = service.users(5)
    items = [f"item{i:04d}" for i in range(1, 60)]
    batch = [{"user": f"bulk{n}", "item": items[(n * 7 + i) % len(items)], "timestamp": 1.7e9 + i}
             for n in range(100) for i in range(10)]  # 1,000 events of 100 new users: the tower runs often
    written, answered_during = threading.Event(), []

    def write() -> None:
        service.observe(batch)
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not written.is_set() and len(answered_during) < 20:
        service.recommend(known[len(answered_during) % len(known)], 5)
        answered_during.append(not written.is_set())
    writer.join()
    assert sum(answered_during) >= 10  # reads were answered between the write's slices, not after it
    assert service.store.event_count() == len(pd.read_csv(events_file)) + len(batch)
    assert len(service.history("bulk99", 20)) == 10


def test_media_can_be_uploaded_and_are_kept_with_the_state(served_run, demo, events_file, tmp_path):
    import json

    from fastapi.testclient import TestClient

    from mmrec.serve.app import create_app

    state = tmp_path / "state"
    service = start(served_run, demo, events_file, state)
    client = TestClient(create_app(service))
    twin = pd.read_csv(demo.catalog).iloc[6]
    picture = (demo.root / twin["image_path"]).read_bytes()
    record = {"item_id": "uploaded-1", "title": twin["title"], "category": twin["category"]}
    answer = client.post("/items/upload", data={"item": json.dumps(record)},
                         files={"image": ("photo.png", picture, "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["added"] == ["uploaded-1"]
    served = client.get("/media/uploaded-1/image")
    assert served.status_code == 200 and served.content == picture
    assert [p.parent for p in (state / "media").iterdir()] == [state / "media"]  # stored by the server
    fake = client.post("/items/upload", data={"item": json.dumps(record | {"item_id": "uploaded-2"})},
                       files={"image": ("photo.png", events_file.read_bytes(), "image/png")})
    assert fake.status_code == 400 and "not a readable image" in fake.json()["detail"]
    assert client.post("/items/upload", data={"item": "not json"}).status_code == 400
    service.store.close()
    again = start(served_run, demo, events_file, state)
    assert again.media_path("uploaded-1", "image").read_bytes() == picture  # back after a restart


def test_mmrec_forget_works_without_a_server_and_a_running_one_follows(served_run, demo, events_file,
                                                                       tmp_path, monkeypatch):
    import mmrec.serve.store as store_module
    from mmrec.cli import main

    monkeypatch.setattr(store_module, "SYNC_SECONDS", 0.0)
    state = tmp_path / "state"
    running = start(served_run, demo, events_file, state)
    user = running.users(1)[0]
    assert main(["forget", user, "--state", str(state), "--events", str(events_file)]) == 0
    assert user not in set(pd.read_csv(events_file)["user_id"].astype(str))
    assert user not in running.users(1000) and running.history(user) == []  # applied at its next request
    running.store.close()
    assert user not in start(served_run, demo, events_file, state).users(1000)
    assert main(["forget", user]) == 2  # neither --state nor --db: a clear error


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_forget_streams_the_events_file_and_keeps_every_other_row(tmp_path, monkeypatch, suffix):
    """The file is read and rewritten a few rows at a time (here 2), never held whole: the user's
    rows go, every other row stays as it was, in order; a user without rows leaves it untouched."""
    from mmrec.serve import store

    monkeypatch.setattr(store, "STREAM_ROWS", 2)
    frame = pd.DataFrame({"user_id": ["a", "b", "a", "c", "b", "a", "d"],
                          "item_id": ["x", "y, with a comma", "z", "x", "w", "y", "q"],
                          "rating": ["4", "5", "3", "1", "2", "5", "4"]})
    path = tmp_path / f"events{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), "utf-8")
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    before = path.read_bytes()
    assert store._drop_user_rows(path, "nobody") == 0 and path.read_bytes() == before
    assert store._drop_user_rows(path, "a") == 3
    if suffix == ".jsonl":
        after = pd.DataFrame([json.loads(line) for line in path.read_text("utf-8").splitlines()])
    elif suffix == ".parquet":
        after = pd.read_parquet(path)
    else:
        after = pd.read_csv(path, sep="," if suffix == ".csv" else "\t", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(after.reset_index(drop=True),
                                  frame[frame["user_id"] != "a"].reset_index(drop=True))
