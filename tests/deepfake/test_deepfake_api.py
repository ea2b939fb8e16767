"""Deepfake API end to end on the real AASIST model (and MTCNN+MesoNet for images)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
needs_mirror = pytest.mark.skipif(
    not (DATA / "models" / "aasist").is_dir(), reason="../shared/data/models (AASIST weights mirror) not present"
)
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch (the convert extra) is needed to build the ONNX model once"
)
pytestmark = [needs_mirror, needs_torch]


def _wait_batch(client, auth, uuid, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = client.get(f"/detect/batch/{uuid}", headers=auth).json()["item"]
        if item["status"] in ("completed", "partial", "failed"):
            return item
        time.sleep(0.2)
    raise AssertionError("batch did not finish")


@pytest.fixture
def dclient(settings):
    """App with one in-process worker thread and callbacks to 127.0.0.1 allowed."""
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    s = settings.model_copy(
        update={"workers": 1, "url_allow_private": "127.0.0.1", "webhook_backoff_s": 0.2, "job_heartbeat_s": 0.5}
    )
    app = create_app(s)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auth(dclient):
    from sleuth.platform.auth import create_key, create_team

    db = dclient.app.state.platform.db
    team = create_team(db, "df-team")
    return {"Authorization": f"Bearer {create_key(db, team.id).key}"}


def test_prefer_wait_answers_at_its_limit_while_the_inline_run_goes_on(settings, monkeypatch):
    """A slow inline run does not hold the request past WAIT_LIMIT_S: the answer is `processing`, the run carries on
    in its thread, completes the item and frees its inline slot."""
    from fastapi.testclient import TestClient

    from sleuth.api import deepfake as api
    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team

    monkeypatch.setattr(api, "WAIT_LIMIT_S", 0.5)
    go = threading.Event()
    run_inline = api._run_inline

    def slow(platform, item_id, wid):  # type: ignore[no-untyped-def]
        go.wait(60)
        return run_inline(platform, item_id, wid)

    monkeypatch.setattr(api, "_run_inline", slow)
    app = create_app(settings.model_copy(update={"workers": 0}))  # only the inline run can take the item
    with TestClient(app) as c:
        db = app.state.platform.db
        auth = {"Authorization": f"Bearer {create_key(db, create_team(db, 'w').id).key}"}
        try:
            slot = api._inline_slot(app.state.platform)
            free = slot._value  # type: ignore[attr-defined]
            t = time.monotonic()
            r = c.post(
                "/detect", headers={**auth, "Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
            )
            assert r.status_code == 200 and time.monotonic() - t < 20
            item = r.json()["item"]
            assert item["status"] == "processing"
            assert slot._value == free - 1  # type: ignore[attr-defined]  # still held by the run going on
            go.set()
            deadline = time.monotonic() + 120
            while item["status"] != "completed" and time.monotonic() < deadline:
                time.sleep(0.2)
                item = c.get(f"/detect/{item['uuid']}", headers=auth).json()["item"]
            assert item["status"] == "completed" and item["metrics"]["label"] in ("fake", "real")
            deadline = time.monotonic() + 10
            while slot._value != free and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.05)
            assert slot._value == free  # type: ignore[attr-defined]
        finally:
            go.set()  # never leave the inline run (and its slot) blocked


def test_single_detect_prefer_wait_audio(dclient, auth):
    r = dclient.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": ("clip.wav", wav_bytes(5.0), "audio/wav")},
        data={"frame_length": "2"},
    )
    assert r.status_code == 200, r.text
    item = r.json()["item"]
    assert item["status"] == "completed" and item["media_type"] == "audio"
    m = item["metrics"]
    assert m["label"] in ("fake", "real")
    assert len(m["score"]) == 3  # 5 s in 2 s windows: [0,2) [2,4) [4,5)
    assert all(type(x) in (int, float) and 0 <= x <= 1 for x in m["score"])  # numbers, as Resemble's SDK declares
    assert 0 <= float(m["aggregated_score"]) <= 1 and 0 <= float(m["consistency"]) <= 1
    again = dclient.get(f"/detect/{item['uuid']}", headers=auth).json()["item"]
    assert again["metrics"] == m
    listed = dclient.get("/detect", headers=auth).json()
    assert listed["total_count"] == 1 and listed["items"][0]["uuid"] == item["uuid"]


def test_batch_of_50_files_completes_with_counts(dclient, auth):
    files = [("files[]", (f"c{i:02d}.wav", wav_bytes(1.0, seed=i), "audio/wav")) for i in range(50)]
    r = dclient.post("/detect/batch", headers=auth, files=files, data={"visualize": "false"})
    assert r.status_code == 202, r.text
    item = r.json()["item"]
    assert item["total_files"] == 50 and len(item["detect_uuids"]) == 50 and item["status"] == "processing"
    done = _wait_batch(dclient, auth, item["uuid"], timeout=600)
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("completed", 50, 0)
    one = dclient.get(f"/detect/{done['detect_uuids'][7]}", headers=auth).json()["item"]
    assert one["filename"] == "c07.wav" and one["status"] == "completed" and one["metrics"]["score"]


def test_zip_batch_flattens_and_skips_non_media(dclient, auth, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a/b/one.wav", wav_bytes(1.0, seed=1))
        z.writestr("two.wav", wav_bytes(1.0, seed=2))
        z.writestr("c/one.wav", wav_bytes(1.0, seed=3))  # same basename after flattening
        z.writestr("notes.txt", "not media")
        z.writestr("../../evil.wav", wav_bytes(1.0, seed=4))  # zip-slip name: flattened, stays inside
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as zi:
            zi.writestr("x.wav", wav_bytes(0.5))
        z.writestr("nested.zip", inner.getvalue())
        link = zipfile.ZipInfo("link.wav")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
    r = dclient.post("/detect/batch", headers=auth, files={"file": ("media.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 202, r.text
    item = r.json()["item"]
    assert item["total_files"] == 4
    done = _wait_batch(dclient, auth, item["uuid"])
    assert done["completed_count"] == 4
    names = sorted(dclient.get(f"/detect/{u}", headers=auth).json()["item"]["filename"] for u in done["detect_uuids"])
    assert names == ["evil.wav", "one.wav", "one_1.wav", "two.wav"]
    storage_root = dclient.app.state.platform.settings.storage_dir
    assert not (storage_root.parent / "evil.wav").exists()


def test_zip_bomb_refused(dclient, auth):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.wav", b"\0" * 50_000_000)
    r = dclient.post("/detect/batch", headers=auth, files={"file": ("b.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 400 and "zip bomb" in r.json()["message"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"intelligence": "true"}, "intelligence"),
        ({"search_identity": "maybe"}, "search_identity"),
        ({"audio_source_tracing_enabled": "sometimes"}, "audio_source_tracing_enabled"),
        ({"use_llm": "true"}, "use_llm"),
        ({"frame_length": "5"}, "frame_length"),
        ({"frame_length": "x"}, "frame_length"),
        ({"start_region": "3", "end_region": "1"}, "end_region"),
        ({"max_video_secs": "-1"}, "max_video_secs"),
        ({"visualize": "maybe"}, "visualize"),
        ({"callback_url": "http://169.254.169.254/latest"}, "callback_url"),
        ({"callback_url": "http://10.0.0.1/hook"}, "callback_url"),
    ],
)
def test_batch_option_errors_name_the_option(dclient, auth, data, field):
    r = dclient.post(
        "/detect/batch", headers=auth, data=data, files=[("files[]", ("a.wav", wav_bytes(0.5), "audio/wav"))]
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field and field in r.json()["message"] or r.json()["error"]["field"] == field


def test_batch_intake_errors(dclient, auth):
    w = wav_bytes(0.5)
    r = dclient.post(
        "/detect/batch",
        headers=auth,
        files=[("files[]", ("a.wav", w, "audio/wav")), ("file", ("z.zip", b"PK", "application/zip"))],
    )
    assert r.status_code == 400 and "mutually exclusive" in r.json()["message"]
    r = dclient.post(
        "/detect/batch", headers={**auth, "Prefer": "wait"}, files=[("files[]", ("a.wav", w, "audio/wav"))]
    )
    assert r.status_code == 400 and "Prefer" in r.json()["message"]
    r = dclient.post(
        "/detect/batch", headers=auth, files=[("files[]", (f"{i}.wav", w, "audio/wav")) for i in range(51)]
    )
    assert r.status_code == 400 and "50" in r.json()["message"]
    r = dclient.post("/detect/batch", headers=auth, files=[("files[]", ("a.exe", b"MZ", "application/x"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_media_type"
    r = dclient.post("/detect/batch", headers=auth, files=[("file", ("a.zip", b"not a zip", "application/zip"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_zip"
    r = dclient.post("/detect", headers=auth, files={"file": ("a.png", b"garbage", "image/png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media"


def test_corrupt_audio_fails_item_and_refunds(dclient, auth):

    r = dclient.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": ("bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "audio/wav")},
    )
    item = r.json()["item"]
    assert item["status"] == "failed" and item["error_message"]


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []
    fail_first = 2

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(({k: v for k, v in self.headers.items()}, body))
        code = 500 if len(type(self).calls) <= type(self).fail_first else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_callback_retried_and_signed(dclient, auth):
    from sqlalchemy import select

    from sleuth.db.models import Team, WebhookDelivery
    from sleuth.platform.webhooks import verify

    _Receiver.calls = []
    srv = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/hook"
    try:
        r = dclient.post(
            "/detect/batch",
            headers=auth,
            data={"callback_url": url, "visualize": "false"},
            files=[
                ("files[]", ("a.wav", wav_bytes(1.0), "audio/wav")),
                ("files[]", ("b.wav", wav_bytes(1.0, seed=3), "audio/wav")),
            ],
        )
        uuid = r.json()["item"]["uuid"]
        _wait_batch(dclient, auth, uuid)
        deadline = time.time() + 30
        while time.time() < deadline and len(_Receiver.calls) < 3:
            time.sleep(0.1)
    finally:
        srv.shutdown()
    assert len(_Receiver.calls) == 3  # two failures, then delivered, then nothing more
    time.sleep(1.0)
    assert len(_Receiver.calls) == 3
    headers, body = _Receiver.calls[-1]
    payload = json.loads(body)
    assert payload["item"]["uuid"] == uuid and payload["item"]["completed_count"] == 2
    db = dclient.app.state.platform.db
    with db.session() as s:
        secret = s.scalar(select(Team.webhook_secret).where(Team.name == "df-team"))
        row = s.scalar(select(WebhookDelivery))
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert row.status == "delivered" and row.attempts == 3
    # same webhook-id on every retry
    assert len({h["webhook-id"] for h, _ in _Receiver.calls}) == 1


def test_wallet_short_by_one_gets_402_and_nothing_created(settings):
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from sleuth.api.app import create_app
    from sleuth.db.models import Job, JobItem
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    app = create_app(settings.model_copy(update={"billing_enabled": True}))
    db = app.state.platform.db
    team = create_team(db, "poor")
    credits.grant(db, team.id, 2)
    auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
    with TestClient(app) as c:
        files = [("files[]", (f"{i}.wav", wav_bytes(0.5, seed=i), "audio/wav")) for i in range(3)]
        r = c.post("/detect/batch", headers=auth, files=files)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["required"] == 3 and err["available"] == 2
    assert [b["filename"] for b in err["cost_breakdown"]] == ["0.wav", "1.wav", "2.wav"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(JobItem)) == 0
        from sleuth.db.models import StoredObject

        assert s.scalar(select(func.count()).select_from(StoredObject)) == 0
    assert credits.balance(db, team.id).available == 2
    assert not any(app.state.platform.storage.iterate("media/"))


def test_billing_captures_completed_and_refunds_failed(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    app = create_app(settings.model_copy(update={"billing_enabled": True, "workers": 1}))
    db = app.state.platform.db
    team = create_team(db, "payer")
    credits.grant(db, team.id, 10)
    auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
    with TestClient(app) as c:
        files = [
            ("files[]", ("ok.wav", wav_bytes(1.0), "audio/wav")),
            ("files[]", ("bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunk", "audio/wav")),
        ]
        r = c.post("/detect/batch", headers=auth, files=files)
        done = _wait_batch(c, auth, r.json()["item"]["uuid"])
    assert (done["completed_count"], done["failed_count"]) == (1, 1)
    b = credits.balance(db, team.id)
    assert (b.available, b.captured_total, b.reserved_open) == (9, 1, 0)
    assert credits.ledger_sum(db, team.id) == 9


def test_other_team_gets_404(dclient, auth):
    from sleuth.platform.auth import create_key, create_team

    r = dclient.post(
        "/detect", headers={**auth, "Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    )
    uuid = r.json()["item"]["uuid"]
    db = dclient.app.state.platform.db
    other = {"Authorization": f"Bearer {create_key(db, create_team(db, 'other').id).key}"}
    assert dclient.get(f"/detect/{uuid}", headers=other).status_code == 404
    assert dclient.get("/detect", headers=other).json()["total_count"] == 0
    b = dclient.post("/detect/batch", headers=auth, files=[("files[]", ("a.wav", wav_bytes(0.5), "audio/wav"))])
    buuid = b.json()["item"]["uuid"]
    assert dclient.get(f"/detect/batch/{buuid}", headers=other).status_code == 404
    missing = dclient.get("/detect/batch/00000000-0000-0000-0000-000000000000", headers=auth)
    assert missing.status_code == 404
    assert dclient.get(f"/detect/{uuid}/media", headers=other).status_code == 404


def test_zero_retention_deletes_media(dclient, auth):
    r = dclient.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        data={"zero_retention_mode": "true"},
        files={"file": ("secret.wav", wav_bytes(1.0), "audio/wav")},
    )
    item = r.json()["item"]
    assert item["status"] == "completed" and item["zero_retention_mode"] is True
    assert item["file_deleted_at"] and item["url"] is None
    storage = dclient.app.state.platform.storage
    assert not [k for k in storage.iterate("media/")]
    assert dclient.get(f"/detect/{item['uuid']}/media", headers=auth).status_code == 404


def test_expired_results_are_404(dclient, auth):
    from datetime import timedelta

    from sqlalchemy import update

    from sleuth.db.models import Job, utcnow
    from sleuth.platform.expiry import sweep

    r = dclient.post(
        "/detect", headers={**auth, "Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    )
    uuid = r.json()["item"]["uuid"]
    p = dclient.app.state.platform
    with p.db.session() as s:
        s.execute(update(Job).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert dclient.get(f"/detect/{uuid}", headers=auth).status_code == 404
    rep = sweep(p.db, p.storage)
    assert rep.jobs == 1 and not list(p.storage.iterate("media/"))


class _WavServer(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        data = wav_bytes(1.0)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_detect_by_json_url_and_ssrf(dclient, auth):
    srv = HTTPServer(("127.0.0.1", 0), _WavServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = dclient.post(
            "/detect",
            headers={**auth, "Prefer": "wait"},
            json={"url": f"http://127.0.0.1:{srv.server_port}/clip.wav", "frame_length": 1},
        )
    finally:
        srv.shutdown()
    assert r.status_code == 200, r.text
    item = r.json()["item"]
    assert item["status"] == "completed" and item["filename"] == "clip.wav" and len(item["metrics"]["score"]) == 1
    for url in ("http://192.168.1.10/a.wav", "http://127.0.0.2/a.wav", "ftp://example.org/a.wav"):
        bad = dclient.post("/detect", headers=auth, json={"url": url})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "blocked_url", url
    assert dclient.post("/detect", headers=auth, json={}).status_code == 400
    r = dclient.post("/detect", headers=auth, json={"url": "http://127.0.0.1:1/x.wav", "intelligence": True})
    assert r.status_code == 400 and r.json()["error"]["field"] == "intelligence"


def test_zero_retention_media_of_reaped_items_goes_at_the_next_sweep(settings):
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from sleuth.api.app import create_app
    from sleuth.db.models import JobItem, utcnow
    from sleuth.platform import jobs
    from sleuth.platform.auth import create_key, create_team
    from sleuth.platform.expiry import sweep

    app = create_app(settings.model_copy(update={"workers": 0, "job_max_attempts": 1}))
    p = app.state.platform
    auth = {"Authorization": f"Bearer {create_key(p.db, create_team(p.db, 'zr').id).key}"}
    with TestClient(app) as c:
        r = c.post(
            "/detect",
            headers=auth,
            data={"zero_retention_mode": "true"},
            files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")},
        )
        uuid = r.json()["item"]["uuid"]
    assert jobs.claim_item(p.db, uuid, "dead-worker")
    with p.db.session() as s:  # the worker died holding it; its lease ran out
        s.execute(update(JobItem).values(lease_until=utcnow() - timedelta(seconds=1)))
    jobs.reap(p.db)
    with p.db.read_session() as s:
        item = s.get(JobItem, uuid)
        assert item.status == "failed" and item.media_key is not None
    sweep(p.db, p.storage)
    with p.db.read_session() as s:
        item = s.get(JobItem, uuid)
        assert item.media_key is None and item.file_deleted_at is not None
    assert list(p.storage.iterate("media/")) == []
