"""Batch status and callbacks with each file's result: GET /detect/batch/{uuid}?include=results, and the
callback body when the results add up to at most 256 KB of JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import wav_bytes  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = [
    pytest.mark.skipif(not (DATA / "models" / "aasist").is_dir(), reason="../shared/data/models not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is needed to build the model once"),
]


class _Hook(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hook.calls.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def client(settings):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    app = create_app(settings.model_copy(update={"workers": 1, "url_allow_private": "127.0.0.1"}))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auth(client):  # type: ignore[no-untyped-def]
    from sleuth.platform.auth import create_key, create_team

    db = client.app.state.platform.db
    return {"Authorization": f"Bearer {create_key(db, create_team(db, 'results-team').id).key}"}


def _batch(client, auth, url: str, n: int) -> str:  # type: ignore[no-untyped-def]
    files = [("files[]", (f"f{i}.wav", wav_bytes(1.0, seed=i), "audio/wav")) for i in range(n)]
    r = client.post("/detect/batch", headers=auth, data={"callback_url": url, "visualize": "false"}, files=files)
    assert r.status_code == 202, r.text
    return r.json()["item"]["uuid"]


def _callback_for(uuid: str) -> tuple[dict[str, str], bytes]:
    deadline = time.time() + 120
    while time.time() < deadline:
        for h, b in _Hook.calls:
            if json.loads(b)["item"]["uuid"] == uuid:
                return h, b
        time.sleep(0.1)
    raise AssertionError("no callback")


@pytest.mark.db
def test_include_results_and_callback_body(client, auth, monkeypatch):
    from sqlalchemy import select

    from sleuth.db.models import Team
    from sleuth.platform.webhooks import verify
    from sleuth.services import deepfake as svc

    _Hook.calls = []
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/hook"
    try:
        uuid = _batch(client, auth, url, 3)
        headers, body = _callback_for(uuid)
        monkeypatch.setattr(svc, "CALLBACK_RESULTS_MAX_BYTES", 10)  # a "large" batch: counts and ids only
        big = _batch(client, auth, url, 2)
        _, big_body = _callback_for(big)
    finally:
        srv.shutdown()

    item = json.loads(body)["item"]
    assert [i["filename"] for i in item["items"]] == ["f0.wav", "f1.wav", "f2.wav"]
    assert [i["uuid"] for i in item["items"]] == item["detect_uuids"]
    assert all(i["status"] == "completed" and i["metrics"]["label"] in ("real", "fake") for i in item["items"])
    with client.app.state.platform.db.session() as s:
        secret = s.scalar(select(Team.webhook_secret).where(Team.name == "results-team"))
    assert verify(secret, headers, body)
    big_item = json.loads(big_body)["item"]
    assert "items" not in big_item and len(big_item["detect_uuids"]) == 2

    plain = client.get(f"/detect/batch/{uuid}", headers=auth).json()["item"]
    assert "items" not in plain
    full = client.get(f"/detect/batch/{uuid}?include=results", headers=auth).json()["item"]
    assert len(full["items"]) == 3
    for one in full["items"]:
        alone = client.get(f"/detect/{one['uuid']}", headers=auth).json()["item"]
        assert one["metrics"] == alone["metrics"] and one["filename"] == alone["filename"]
    r = client.get(f"/detect/batch/{uuid}?include=everything", headers=auth)
    assert r.status_code == 400 and "include" in r.text
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/detect/batch/{uuid}"]["get"]["parameters"]
    assert any(p["name"] == "include" and p["in"] == "query" for p in params)
