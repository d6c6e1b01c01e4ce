"""Load on ``mmrec serve`` over loopback: latency percentiles, throughput and the server's memory.

    python benchmarks/serve_load.py --catalog demo
    python benchmarks/serve_load.py --catalog 100k --duration 30
    python benchmarks/serve_load.py --catalog large --items 1000000 --burst-only

Builds a run on disk (``demo``: the generated 240-item demo with text, image and audio, a GRU
two-tower; ``100k``: 100,000 items in 200 topics, 20,000 simulated users, an id-only mean tower —
the index is then HNSW32), starts ``mmrec serve`` as its own process, and drives it with
``--clients`` concurrent keep-alive HTTP clients for ``--duration`` seconds per endpoint:
``GET /recommend/{user}?k=10`` (random known users), the same re-ranked for variety
(``diversify=0.3``, MMR and DPP: the latency cost of re-ranking), ``POST /events`` (one click on a random item
by a random user) and a 90/10 mix of both; then ``GET /recommend`` latency (p50/p99/max) while one
client writes 300 new items and 3,000 events of 300 new users, and what a 20 MB body costs.
Before those, the ingest burst: 20 POST /events of 2,000 events each (1,000 of 100 new users,
1,000 of known users) from 2 writers while 2 clients read — events/s acknowledged (committed and
applied) and the reads' p50/p99/max. Prints
p50/p99 latency, requests/s and the server's resident memory before, after each phase and at the
end (flat memory = no leak per request).
Clients and server share the machine's cores: on 2 cores the numbers are a floor.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.datasets.demo import make_demo
from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour


def build_demo_run(root: Path) -> tuple[Path, Path, Path]:
    demo = make_demo(root / "demo", seed=0)
    catalog = mmrec.Catalog.from_path(demo.catalog)
    presets = {"text": "text-tfidf-svd", "image": "image-mobilenet-v3-small", "audio": "audio-mfcc-stats"}
    items = mmrec.encode_items(catalog, encoders=presets, show_progress=False)
    events = mmrec.Interactions.from_path(demo.events)
    model = mmrec.TwoTower(user_tower="gru", dim=32, epochs=3, seed=0).fit(items, events, show_progress=False)
    model.save(root / "run" / "model")
    model.encode_items(items).save(root / "run" / "item_vectors")
    return root / "run", demo.catalog, demo.events


def build_large_run(root: Path, n_items: int = 100_000, n_users: int = 20_000) -> tuple[Path, Path, Path]:
    ids = np.array([f"i{i:06d}" for i in range(n_items)], dtype=object)
    topics = np.arange(n_items) % 200
    catalog = pd.DataFrame({"item_id": ids, "title": [f"item {i}" for i in range(n_items)],
                            "category": [f"topic{t}" for t in topics]})
    catalog.to_csv(root / "catalog.csv", index=False)
    events = simulate_behaviour(ids, topics, BehaviourConfig(n_users=n_users, sessions=(2, 4), seed=0))
    events.frame.to_csv(root / "events.csv", index=False)
    model = mmrec.TwoTower(user_tower="mean", dim=32, epochs=1, seed=0).fit(None, events, show_progress=False)
    model.save(root / "run" / "model")
    model.encode_items().save(root / "run" / "item_vectors")
    return root / "run", root / "catalog.csv", root / "events.csv"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drive(url: str, make_request, clients: int, duration: float) -> tuple[np.ndarray, int]:
    """Latencies (ms) of every request sent by ``clients`` threads for ``duration`` seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop = time.perf_counter() + duration

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, timeout=30) as session:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = make_request(session, rng)
                latencies[n].append((time.perf_counter() - started) * 1e3)
                failures[n] += response.status_code != 200

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return np.concatenate([np.asarray(lat) for lat in latencies]), sum(failures)


def write_phase(url: str, users: list[str], item_ids: list[str], catalog: Path, clients: int,
                n_items: int = 300, n_users: int = 300, events_per_user: int = 10) -> dict:
    """``GET /recommend`` latency while one client writes ``n_items`` new items (one request; skipped
    when the model cannot encode content) and ``n_users × events_per_user`` events of new users (one
    request): the issue's "reads never wait on writes" scenario."""
    rows = pd.read_csv(catalog)
    rows = rows[[_media_open(catalog.parent, row) for row in rows.itertuples(index=False)]]
    records = [{key: (None if pd.isna(value) else value) for key, value in rows.iloc[i % len(rows)].items()}
               | {"item_id": f"written{i:05d}"} for i in range(n_items)]
    rng = random.Random(7)
    events = [{"user": f"writer{u:04d}", "item": rng.choice(item_ids), "event": "click"}
              for u in range(n_users) for _ in range(events_per_user)]
    latencies: list[float] = []
    done = threading.Event()
    timings: dict = {}

    def reader(n: int) -> None:
        local = random.Random(n)
        with httpx.Client(base_url=url, timeout=60) as session:
            while not done.is_set():
                started = time.perf_counter()
                session.get(f"/recommend/{local.choice(users)}", params={"k": 10})
                latencies.append((time.perf_counter() - started) * 1e3)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    with httpx.Client(base_url=url, timeout=600) as session:
        started = time.perf_counter()
        answer = session.post("/items", json=records)
        timings["items"] = (time.perf_counter() - started, answer.status_code)
        started = time.perf_counter()
        answer = session.post("/events", json=events)
        timings["events"] = (time.perf_counter() - started, answer.status_code)
    done.set()
    for thread in threads:
        thread.join()
    return {"latencies": np.asarray(latencies), "timings": timings, "n_items": n_items,
            "n_events": len(events)}


def burst_phase(url: str, users: list[str], item_ids: list[str], *, writers: int = 2, readers: int = 2,
                requests: int = 20, new_users: int = 100, events_per_new_user: int = 10,
                known_events: int = 1000) -> dict:
    """Sustained ingest: ``requests`` POST /events of ``new_users × events_per_new_user`` events of
    new users plus ``known_events`` of known users each, sent by ``writers`` clients, while
    ``readers`` clients keep asking ``GET /recommend``. Events/s counts from the first request
    sent to the last one acknowledged (acknowledged = committed and applied)."""
    rng = random.Random(11)
    bodies = []
    for r in range(requests):
        body = [{"user": f"burst{r:02d}-{u:04d}", "item": rng.choice(item_ids), "event": "click"}
                for u in range(new_users) for _ in range(events_per_new_user)]
        body += [{"user": rng.choice(users), "item": rng.choice(item_ids), "event": "click"}
                 for _ in range(known_events)]
        rng.shuffle(body)
        bodies.append(body)
    latencies: list[float] = []
    statuses: list[int] = []
    done = threading.Event()

    def reader(n: int) -> None:
        local = random.Random(100 + n)
        with httpx.Client(base_url=url, timeout=60) as session:
            while not done.is_set():
                started = time.perf_counter()
                session.get(f"/recommend/{local.choice(users)}", params={"k": 10})
                latencies.append((time.perf_counter() - started) * 1e3)

    def writer(n: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as session:
            for body in bodies[n::writers]:
                statuses.append(session.post("/events", json=body).status_code)

    # the same readers alone first: what reads cost on these cores without a write
    reading = [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
    for thread in reading:
        thread.start()
    time.sleep(5.0)
    done.set()
    for thread in reading:
        thread.join()
    alone, latencies[:] = np.asarray(latencies), []
    done.clear()
    reading = [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
    for thread in reading:
        thread.start()
    time.sleep(0.5)
    started = time.perf_counter()
    writing = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in writing:
        thread.start()
    for thread in writing:
        thread.join()
    seconds = time.perf_counter() - started
    done.set()
    for thread in reading:
        thread.join()
    return {"events": sum(len(b) for b in bodies), "seconds": seconds, "statuses": statuses,
            "latencies": np.asarray(latencies), "alone": alone, "writers": writers, "readers": readers,
            "requests": requests}


def _media_open(root: Path, row) -> bool:
    """Whether a catalog row's image and audio (when given) open: the demo has broken ones on purpose."""
    import soundfile
    from PIL import Image

    try:
        if isinstance(getattr(row, "image_path", None), str):
            with Image.open(root / row.image_path) as image:
                image.verify()
        if isinstance(getattr(row, "audio_path", None), str):
            soundfile.info(str(root / row.audio_path))
    except Exception:  # noqa: BLE001 - any decoder error: leave the row out
        return False
    return True


def big_body(url: str, pid: int, megabytes: int = 20) -> tuple[int, float, float]:
    """Status and server RSS before/after one ``megabytes`` MB POST /events."""
    before = rss_mb(pid)
    body = b"[" + b" " * (megabytes * 2**20) + b"]"
    status = httpx.post(url + "/events", content=body, headers={"Content-Type": "application/json"},
                        timeout=120).status_code
    return status, before, rss_mb(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", choices=["demo", "large", "100k"], default="demo",
                        help="large (100k is its old name): --items items in 200 topics")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--items", type=int, default=100_000, help="catalog size of --catalog large")
    parser.add_argument("--burst-only", action="store_true",
                        help="skip the per-endpoint phases: only the ingest burst (and memory)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        run, catalog, events = (build_demo_run(root) if args.catalog == "demo"
                                else build_large_run(root, n_items=args.items))
        print(f"built the {args.catalog} run in {time.perf_counter() - started:.0f} s")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        server = subprocess.Popen([sys.executable, "-m", "mmrec.cli", "-q", "serve", "--model", str(run),
                                   "--catalog", str(catalog), "--events", str(events), "--port", str(port)],
                                  env=env)
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    health = httpx.get(url + "/health", timeout=2).json()
                    break
                except httpx.HTTPError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.5)
            users = httpx.get(url + "/users?limit=1000").json()["users"]
            # items the served index holds (an id-only model has no vector for never-seen items)
            item_ids = [str(i) for i in mmrec.ItemVectors.load(run / "item_vectors").ids]
            print(f"serving {health}; {len(users)} users to query")

            def recommend(session, rng):
                return session.get(f"/recommend/{rng.choice(users)}", params={"k": 10})

            def diversified(rerank: str):
                def request(session, rng):
                    return session.get(f"/recommend/{rng.choice(users)}",
                                       params={"k": 10, "diversify": 0.3, "rerank": rerank})
                return request

            def feedback(session, rng):
                return session.post("/events", json={"user": rng.choice(users), "item": rng.choice(item_ids),
                                                     "event": "click"})

            def mixed(session, rng):
                return (feedback if rng.random() < 0.1 else recommend)(session, rng)

            drive(url, recommend, args.clients, 2.0)  # warm-up: first touches run the tower
            memory = [("after warm-up", rss_mb(server.pid))]
            rows = []
            phases = () if args.burst_only else (
                                  ("GET /recommend", recommend),
                                  ("GET /recommend?diversify=0.3 (MMR)", diversified("mmr")),
                                  ("GET /recommend?diversify=0.3 (DPP)", diversified("dpp")),
                                  ("POST /events", feedback), ("90% recommend + 10% events", mixed))
            for name, request in phases:
                latencies, failed = drive(url, request, args.clients, args.duration)
                p50, p99 = np.percentile(latencies, [50, 99])
                rows.append((name, len(latencies) / args.duration, p50, p99, failed))
                memory.append((f"after {name}", rss_mb(server.pid)))
            burst = burst_phase(url, users, item_ids)
            memory.append(("after the ingest burst", rss_mb(server.pid)))
            if not args.burst_only:
                writing = write_phase(url, users, item_ids, catalog, args.clients)
                memory.append(("after the write", rss_mb(server.pid)))
                body_status, body_before, body_after = big_body(url, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"\n{args.catalog}: {health['items']:,} items ({health['index']}), {args.clients} clients, "
          f"{args.duration:.0f} s per phase, {os.cpu_count()} cores shared by clients and server\n")
    print("| endpoint | requests/s | p50 ms | p99 ms | non-200 |\n|---|---|---|---|---|")
    for name, rate, p50, p99, failed in rows:
        print(f"| {name} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {failed} |")
    lat = burst["latencies"]
    print(f"\ningest burst: {burst['requests']} POST /events of 2,000 events (1,000 of new users, "
          f"1,000 of known users) from {burst['writers']} writers while {burst['readers']} clients read: "
          f"{burst['events']:,} events acknowledged in {burst['seconds']:.1f} s = "
          f"**{burst['events'] / burst['seconds']:,.0f} events/s** "
          f"(statuses {sorted(set(burst['statuses']))}); "
          f"reads meanwhile: {len(lat):,}, p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms")
    alone = burst["alone"]
    print(f"the same {burst['readers']} readers for 5 s before it, no write: {len(alone):,} reads, "
          f"p50 {np.percentile(alone, 50):.1f} ms, p99 {np.percentile(alone, 99):.1f} ms, "
          f"max {alone.max():.1f} ms")
    if args.burst_only:
        print("\nserver memory (RSS): " + ", ".join(f"{label} {mb:,.0f} MB" for label, mb in memory))
        return
    lat = writing["latencies"]
    items_s, items_status = writing["timings"]["items"]
    events_s, events_status = writing["timings"]["events"]
    print(f"\nGET /recommend while one client writes {writing['n_items']} new items (HTTP {items_status}, "
          f"{items_s:.1f} s) then {writing['n_events']:,} events of new users (HTTP {events_status}, "
          f"{events_s:.1f} s): {len(lat):,} reads, p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms")
    print(f"a 20 MB POST /events: HTTP {body_status}, server RSS {body_before:,.0f} → {body_after:,.0f} MB")
    print("\nserver memory (RSS): " + ", ".join(f"{label} {mb:,.0f} MB" for label, mb in memory))


if __name__ == "__main__":
    main()
