from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner


def test_health_ready_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "storage": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/usage" in spec["paths"]


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_authorization"),
        ({"Authorization": "Bearer sk_sleuth_nope"}, "invalid_api_key"),
    ],
)
def test_unauthenticated_requests_get_401_json(client, headers, code):
    r = client.get("/v1/usage", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["success"] is False
    assert body["error"]["status"] == 401
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_key_lifecycle_via_cli(client, settings):
    from sleuth.cli import app as cli

    runner = CliRunner()
    r = runner.invoke(cli, ["teams", "create", "acme"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["keys", "create", "--team", "acme"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("sk_sleuth_")
    # only the hash is stored
    from sqlalchemy import select

    from sleuth.db.models import ApiKey

    with client.app.state.platform.db.session() as s:
        rows = list(s.scalars(select(ApiKey)))
    assert len(rows) == 1 and key not in (rows[0].key_hash, rows[0].prefix)
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/usage", headers=auth).status_code == 200
    listed = runner.invoke(cli, ["keys", "list"])
    assert rows[0].id in listed.stdout and key not in listed.stdout
    r = runner.invoke(cli, ["keys", "revoke", rows[0].id])
    assert r.exit_code == 0, r.output
    r2 = client.get("/v1/usage", headers=auth)
    assert r2.status_code == 401 and r2.json()["error"]["code"] == "revoked_api_key"
    # duplicate team is a clean error
    dup = runner.invoke(cli, ["teams", "create", "acme"])
    assert dup.exit_code == 1 and "already exists" in dup.output


def test_unknown_route_and_method_use_envelope(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.delete("/healthz")
    assert r.status_code == 405 and r.json()["success"] is False


def test_usage_shape_unlimited(client, team_key):
    _, auth = team_key
    for _ in range(3):
        client.get("/v1/usage", headers=auth)
    body = client.get("/v1/usage", headers=auth).json()
    assert set(body) >= {"credits", "billing", "requests", "rate_limit", "user_id"}
    assert body["credits"]["unlimited"] is True and body["credits"]["total_available"] is None
    assert body["requests"]["today"] == 4 and body["requests"]["this_month"] == 4
    assert set(body["rate_limit"]) == {"limit", "remaining", "reset_at"}


def test_rate_limit_429_with_headers(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team

    s = settings.model_copy(update={"rate_limit_usage": 3})
    app = create_app(s)
    db = app.state.platform.db
    team = create_team(db, "rl")
    auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
    with TestClient(app) as c:
        # the limits use fixed one-minute windows: start well inside one, so the four requests share it
        if time.time() % 60 > 45:
            time.sleep(61 - time.time() % 60)
        seen = [c.get("/v1/usage", headers=auth) for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert seen[0].headers["X-RateLimit-Limit"] == "3"
    assert seen[2].headers["X-RateLimit-Remaining"] == "0"
    last = seen[3]
    assert int(last.headers["Retry-After"]) >= 1
    assert "X-RateLimit-Reset" in last.headers
    assert last.json()["error"]["code"] == "rate_limited"


def test_body_limit_declared_and_streamed(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    s = settings.model_copy(update={"max_body_mb": 0.001})  # 1000 bytes
    app: FastAPI = create_app(s)
    consumed: list[int] = []

    @app.post("/v1/echo-size")
    async def echo(request: Request) -> dict[str, int]:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        consumed.append(n)
        return {"n": n}

    with TestClient(app) as c:
        assert c.post("/v1/echo-size", content=b"x" * 500).json() == {"n": 500}
        r = c.post("/v1/echo-size", content=b"x" * 5000)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def gen():
            for _ in range(100):
                yield b"y" * 100

        r = c.post("/v1/echo-size", content=gen())  # chunked, no Content-Length
        assert r.status_code == 413
    # the streamed request was cut off near the limit, never read whole
    assert consumed == [500]


def test_ssrf_pinning_connects_to_the_checked_address():
    from sleuth.platform.ssrf import pin

    url, headers, ext = pin("https://user@example.org:8443/a/b?x=1#frag", ["93.184.215.14"])
    assert url == "https://93.184.215.14:8443/a/b?x=1"
    assert headers == {"Host": "example.org:8443"} and ext == {"sni_hostname": "example.org"}
    url, headers, ext = pin("http://example.org", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert url == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/" and ext == {}
    assert pin("http://allowed.local/x", []) == ("http://allowed.local/x", {}, {})
