"""mmrec serve in front of people: token, Host check, body limits, media only from media, errors
without absolute paths, and the CLI refusing an open network binding without a token."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from mmrec.errors import ConfigError  # noqa: E402
from mmrec.serve import ServeConfig, Service  # noqa: E402
from mmrec.serve.access import AccessPolicy, check_binding, read_token  # noqa: E402
from mmrec.serve.app import create_app  # noqa: E402

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def service(served_run, demo):
    return Service.from_paths(served_run, demo.catalog, events=demo.events,
                              config=ServeConfig(category_column="category"))


def guarded(service, **policy) -> TestClient:
    access = AccessPolicy.for_binding("127.0.0.1", token=policy.pop("token", TOKEN), **policy)
    return TestClient(create_app(service, access), base_url="http://localhost:8000")


def test_a_token_guards_every_route_but_health_and_the_page(service):
    client = guarded(service)
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    user = client.get("/users", headers={"Authorization": f"Bearer {TOKEN}"}).json()["users"][0]
    for method, path in [("get", f"/recommend/{user}"), ("get", "/users"), ("get", f"/history/{user}"),
                         ("post", "/events"), ("delete", f"/users/{user}"), ("post", "/items"),
                         ("get", "/media/item0001/image"), ("get", "/openapi.json")]:
        response = client.request(method, path, json={"user": user, "item": "item0001"})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    ok = client.get(f"/recommend/{user}?k=3", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 3


def test_unknown_host_names_are_refused(service):
    client = guarded(service, allowed_hosts=["recs.example.com"])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/health").status_code == 200  # localhost:8000
    for host in ("recs.example.com", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/users", headers=headers | {"Host": host}).status_code == 200, host
    rebound = client.get("/users", headers=headers | {"Host": "attacker.example:8000"})
    assert rebound.status_code == 400 and "Host" in rebound.json()["detail"]


def test_bodies_over_the_cap_are_413_without_being_read(service):
    client = guarded(service, token=None, max_body=64 * 1024)
    big = b"[" + b",".join([b'{"user": "u", "item": "item0001"}'] * 4000) + b"]"
    assert len(big) > 64 * 1024
    response = client.post("/events", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the cap holds while the body streams in
        for _ in range(200):
            yield b" " * 4096

    streamed = client.post("/events", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    default = guarded(service, token=None)  # 8 MiB: a 10,000-event batch fits
    batch = [{"user": f"bulk{i % 300}", "item": "item0001"} for i in range(10_000)]
    assert default.post("/events", json=batch).json() == {"applied": 10_000}
    too_many = default.post("/events", json=batch + batch[:1])
    assert too_many.status_code == 422


def test_media_are_only_files_that_open_as_media_inside_the_root(service, demo):
    client = TestClient(create_app(service))
    shutil.copy(demo.events, demo.root / "images" / "looks-like.png")
    for path in ("events.csv", "images/looks-like.png", "../../etc/hostname", str(demo.events)):
        response = client.post("/items", json={"item_id": "leak", "title": "x", "image_path": path})
        assert response.status_code == 400, path
        assert str(demo.root) not in response.json()["detail"]  # no absolute path reaches a client
    assert client.get("/media/leak/image").status_code == 404


def test_open_bindings_need_a_token(tmp_path, monkeypatch):
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", TOKEN)
    for host in ("0.0.0.0", "::", "192.168.1.20", "recs.example.com"):
        with pytest.raises(ConfigError, match="MMREC_API_TOKEN"):
            check_binding(host, None)
        check_binding(host, None, insecure=True)
    monkeypatch.setenv("MMREC_API_TOKEN", "from-env")
    assert read_token() == "from-env"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(tmp_path / "token") == "from-file"
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_token(tmp_path / "empty")


def test_the_cli_refuses_to_serve_everyone_without_a_token(served_run, demo):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(demo.root)}
    done = subprocess.run([sys.executable, "-m", "mmrec.cli", "serve", "--model", str(served_run),
                           "--catalog", str(demo.catalog), "--host", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0 and "MMREC_API_TOKEN" in done.stderr
