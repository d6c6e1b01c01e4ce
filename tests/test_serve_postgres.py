"""The served state on a real PostgreSQL server (Debian ``postgresql``; ``initdb``/``pg_ctl`` in a
temporary folder, stopped after): replicas share one store. Skipped where PostgreSQL or psycopg is
missing, unless ``MMREC_REQUIRE_POSTGRES=1`` (CI)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from mmrec.serve import ServeConfig, Service  # noqa: E402

REQUIRED = os.environ.get("MMREC_REQUIRE_POSTGRES") == "1"


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"MMREC_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install 'mmrec[postgres]')")
    bin_dir = _bin_dir()
    if bin_dir is None:
        _missing("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="mmrec-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres account
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _missing("running as root and there is no 'postgres' account to run the server")
        shutil.chown(root, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "mmrec", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-w", "start"],
                       check=True, capture_output=True, timeout=120)
        yield f"postgresql://mmrec@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_replicas_share_one_postgresql_store(served_run, demo, tmp_path, postgres_url, monkeypatch):
    import mmrec.serve.store as store_module

    monkeypatch.setattr(store_module, "SYNC_SECONDS", 0.0)
    events = tmp_path / "events.csv"
    shutil.copy(demo.events, events)
    config = ServeConfig(category_column="category")

    def replica() -> Service:
        return Service.from_paths(served_run, demo.catalog, events=events, config=config, db=postgres_url)

    left, right = replica(), replica()
    imported = left.store.event_count()
    assert imported > 0 and right.store.event_count() == imported  # imported once for both
    left.observe([{"user": "pg-user", "item": "item0002", "timestamp": 1.7e9}])
    right.observe([{"user": "pg-user", "item": "item0007", "timestamp": 1.7e9 + 1}])
    for service in (left, right):
        assert [e["item"] for e in service.history("pg-user")] == ["item0007", "item0002"]
    user = left.users(1)[0]
    left.forget(user)
    assert user not in right.users(1000)
    left.store.close()
    right.store.close()
    restarted = replica()  # a restart rebuilds from the store
    assert restarted.store.event_count() < imported + 2  # the forgotten user's rows are gone
    assert [e["item"] for e in restarted.history("pg-user")] == ["item0007", "item0002"]
    assert user not in restarted.users(1000) and restarted.history(user) == []
