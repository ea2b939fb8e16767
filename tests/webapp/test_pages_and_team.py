"""The pages ``sleuth serve`` serves (the app, /docs, /redoc) need nothing from outside; the vendored assets are the
pinned npm files; the team routes (who am I, the webhook secret) are authenticated and team-scoped."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sleuth.api.ui import WEB

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](https?:)?//""", re.I)


def test_app_pages_are_served_with_a_strict_policy(client):
    for path in ("/", "/ui", "/ui/", "/results", "/ui/wildlife/anything"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert not EXTERNAL.search(r.text)
    page = client.get("/").text
    for ref in re.findall(r"""(?:src|href)="(/ui/static/[^"]+)\"""", page):
        assert client.get(ref).status_code == 200, ref
    assert client.get("/favicon.ico", follow_redirects=True).status_code == 200


def test_every_module_the_page_imports_is_served(client):
    """Follow the ES module graph from main.js: every import resolves to a file the server serves."""
    seen: set[str] = set()
    todo = ["/ui/static/js/main.js"]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = client.get(url)
        assert r.status_code == 200, url
        assert "javascript" in r.headers["content-type"], (url, r.headers["content-type"])
        for rel in re.findall(r"""from\s+["'](\./[^"']+)["']""", r.text):
            todo.append(url.rsplit("/", 1)[0] + "/" + rel[2:])
    assert {"/ui/static/js/grid.js", "/ui/static/js/review.js", "/ui/static/js/deepfake.js"} <= seen


def test_docs_and_redoc_load_only_local_assets(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text and "fastapi.tiangolo.com" not in docs.text
    assert '"validatorUrl": null' in docs.text  # no badge image from validator.swagger.io
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "/ui/static/vendor/redoc/redoc.standalone.js" in redoc.text
    assert "fonts.googleapis.com" not in redoc.text and "cdn." not in redoc.text
    for asset in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "redoc/redoc.standalone.js"):
        assert client.get(f"/ui/static/vendor/{asset}").status_code == 200
    assert "cdn.redoc.ly" not in client.get("/ui/static/vendor/redoc/redoc.standalone.js").text
    paths = client.get("/openapi.json").json()["paths"]
    assert "/docs" not in paths and "/" not in paths and "/v1/exports" in paths


def test_vendored_files_are_the_recorded_ones_and_small():
    manifest = json.loads((WEB / "vendor" / "VENDOR.json").read_text())
    for pkg in manifest["packages"].values():
        for name, digest in pkg["files"].items():
            data = (WEB / pkg["folder"] / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest["sha256"], name
    for path in Path(WEB).rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 2_000_000, path


def test_own_scripts_fetch_nothing_from_outside():
    for path in [*Path(WEB, "js").glob("*.js"), Path(WEB, "app.css"), Path(WEB, "index.html")]:
        text = path.read_text()
        assert not re.search(r"https?://", text), path  # every URL the page uses is relative to the server


def test_me_and_the_webhook_secret(client, team_key, other_team_key, app):
    from sleuth.platform import webhooks
    from sleuth.platform.auth import create_key

    team, auth = team_key
    db = app.state.platform.db
    named = {"Authorization": f"Bearer {create_key(db, team, 'Ada Lovelace').key}"}
    me = client.get("/v1/me", headers=named).json()
    assert (me["team_id"], me["key_name"], me["reviewer"]) == (team, "Ada Lovelace", "Ada Lovelace")
    assert client.get("/v1/me", headers=auth).json()["reviewer"].startswith("sk_sleuth_")
    assert client.get("/api/v1/me", headers=auth).status_code == 200  # the wildlife alias
    for path, method in (
        ("/v1/me", "get"),
        ("/v1/team/webhook-secret", "get"),
        ("/v1/team/webhook-secret/rotate", "post"),
    ):
        assert getattr(client, method)(path).status_code == 401
        bad = getattr(client, method)(path, headers={"Authorization": "Bearer sk_sleuth_nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"

    before = client.get("/v1/team/webhook-secret", headers=auth).json()["webhook_secret"]
    other_before = client.get("/v1/team/webhook-secret", headers=other_team_key[1]).json()["webhook_secret"]
    rotated = client.post("/v1/team/webhook-secret/rotate", headers=auth).json()["webhook_secret"]
    assert rotated.startswith("whsec_") and rotated != before
    assert client.get("/v1/team/webhook-secret", headers=auth).json()["webhook_secret"] == rotated
    assert client.get("/v1/team/webhook-secret", headers=other_team_key[1]).json()["webhook_secret"] == other_before
    # callbacks are signed with the new secret: a receiver holding it verifies, one holding the old does not
    body = b'{"success":true}'
    import time

    ts = int(time.time())
    headers = {
        "webhook-id": "m1",
        "webhook-timestamp": str(ts),
        "webhook-signature": webhooks.sign(rotated, "m1", ts, body),
    }
    from sleuth.db.models import Team

    with db.session() as s:
        assert s.get(Team, team).webhook_secret == rotated
    assert webhooks.verify(rotated, headers, body) and not webhooks.verify(before, headers, body)


def test_new_routes_declare_their_responses(client):
    """Each route this app adds declares its body and the statuses it returns (no undeclared 422)."""
    doc = client.get("/openapi.json").json()
    ops = {
        ("/v1/reviews", "post"): {"201", "400", "401", "404", "413", "429"},
        ("/v1/exports", "get"): {"200", "400", "401", "404", "409", "429"},
        ("/v1/upload-groups", "post"): {"201", "400", "401", "404", "413", "429"},
        ("/v1/team/webhook-secret/rotate", "post"): {"200", "401", "429"},
        ("/detect/{uuid}/timeline", "get"): {"200", "400", "401", "404", "429"},
        ("/v1/jobs/{job_id}/image", "get"): {"200", "206", "400", "401", "403", "404", "416", "429"},
        ("/detect/{uuid}/media", "get"): {"200", "206", "400", "401", "403", "404", "416", "429"},
    }
    for (path, method), statuses in ops.items():
        op = doc["paths"][path][method]
        assert set(op["responses"]) == statuses, (path, sorted(op["responses"]))
    assert "requestBody" in doc["paths"]["/v1/reviews"]["post"]
    assert doc["paths"]["/api/v1/reviews"]["post"]["x-alias-of"] == "/v1/reviews"
