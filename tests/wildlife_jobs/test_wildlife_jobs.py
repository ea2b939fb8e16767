"""Animal Detect async image processing on the job platform, with real shared images and models."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
pytestmark = [
    pytest.mark.skipif(not CT.is_dir(), reason="../shared/data not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]
BEAR = (CT / "speciesnet" / "american_black_bear.jpg").read_bytes() if CT.is_dir() else b""
BLANK = (CT / "speciesnet" / "blank.jpg").read_bytes() if CT.is_dir() else b""


@pytest.fixture
def jclient(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    s = settings.model_copy(
        update={"workers": 2, "billing_enabled": True, "rate_limit_enabled": False, "job_heartbeat_s": 0.5}
    )
    app = create_app(s)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def team(jclient):
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    db = jclient.app.state.platform.db
    t = create_team(db, "fleet")
    credits.grant(db, t.id, 500)
    return t.id, {"Authorization": f"Bearer {create_key(db, t.id).key}"}


def _path(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def _create(c, auth, key=None, **over):
    body = {
        "operation": "detect",
        "filename": "img_001.jpg",
        "content_type": "image/jpeg",
        "client_reference_id": "camera-a/2026-06-17/img_001",
        "options": {"threshold": 0.2, "classify": True},
    }
    body.update(over)
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return c.post("/v1/jobs", headers=headers, json=body)


def _wait(c, auth, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = c.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"]
        if st in ("completed", "failed"):
            return st
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_full_flow_and_result_equals_detect_by_id(jclient, team):
    from sleuth.platform import credits

    team_id, auth = team
    r = _create(jclient, auth, key="k-1")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "awaiting_upload"
    assert set(job["upload"]) >= {"url", "method", "headers", "expires_at"} and job["upload"]["method"] == "PUT"
    assert credits.balance(jclient.app.state.platform.db, team_id).available == 500  # nothing reserved yet
    assert jclient.get(_path(job["result_url"]), headers=auth).status_code == 202
    assert jclient.get(f"/v1/detect/{job['id']}", headers=auth).status_code == 202  # same id, same states
    up = jclient.put(_path(job["upload"]["url"]), content=BEAR, headers=job["upload"]["headers"])
    assert up.status_code == 200, up.text
    sub = jclient.post(_path(job["submit_url"]), headers=auth)
    assert sub.status_code == 202 and sub.json()["status"] in ("queued", "processing", "completed")
    assert _wait(jclient, auth, job["id"]) == "completed"
    res = jclient.get(_path(job["result_url"]), headers=auth)
    assert res.status_code == 200
    body = res.json()
    assert body["annotations"] and body["filename"] == "img_001.jpg"
    assert body == jclient.get(f"/v1/detect/{job['id']}", headers=auth).json()
    assert credits.balance(jclient.app.state.platform.db, team_id).available == 499


def test_idempotent_replay_and_conflict(jclient, team):
    from sleuth.platform import credits

    team_id, auth = team
    a = _create(jclient, auth, key="same")
    b = _create(jclient, auth, key="same")
    assert a.status_code == 201 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    c = _create(jclient, auth, key="same", filename="other.jpg")
    assert c.status_code == 409 and c.json()["error"]["code"] == "idempotency_conflict"
    job = a.json()
    jclient.put(_path(job["upload"]["url"]), content=BLANK, headers=job["upload"]["headers"])
    jclient.post(_path(job["submit_url"]), headers=auth)
    jclient.post(_path(job["submit_url"]), headers=auth)  # double submit: still one charge
    _wait(jclient, auth, job["id"])
    replay = _create(jclient, auth, key="same")
    assert replay.json()["id"] == job["id"] and replay.json()["status"] == "completed"
    assert credits.balance(jclient.app.state.platform.db, team_id).available == 499


def test_upload_url_rules(jclient, team):
    _, auth = team
    job = _create(jclient, auth).json()
    url = _path(job["upload"]["url"])
    assert (
        jclient.put(
            url.replace("signature=", "signature=0"), content=BEAR, headers={"Content-Type": "image/jpeg"}
        ).status_code
        == 403
    )
    r = jclient.put(url, content=BEAR, headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and "image/jpeg" in r.json()["message"]
    r = jclient.put(url, content=b"x" * 10_000_001, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413
    assert jclient.post(_path(job["submit_url"]), headers=auth).status_code == 409  # not uploaded yet
    assert jclient.put(url, content=BEAR, headers={"Content-Type": "image/jpeg"}).status_code == 200
    r = jclient.put(url, content=BEAR, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_uploaded"


def test_upload_after_expiry_refused_and_costs_nothing(jclient, team):
    from datetime import timedelta

    from sqlalchemy import update

    from sleuth.db.models import Job, utcnow
    from sleuth.platform import credits
    from sleuth.platform.expiry import sweep

    team_id, auth = team
    job = _create(jclient, auth).json()
    p = jclient.app.state.platform
    with p.db.session() as s:
        s.execute(update(Job).where(Job.id == job["id"]).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = jclient.put(_path(job["upload"]["url"]), content=BEAR, headers={"Content-Type": "image/jpeg"})
    assert r.status_code in (403, 410)
    assert jclient.get(f"/v1/jobs/{job['id']}", headers=auth).json()["status"] == "expired"
    assert jclient.post(_path(job["submit_url"]), headers=auth).status_code == 410
    sweep(p.db, p.storage)
    assert jclient.get(f"/v1/jobs/{job['id']}", headers=auth).json()["status"] == "expired"
    assert jclient.get(_path(job["result_url"]), headers=auth).status_code == 404
    assert credits.balance(p.db, team_id).available == 500


def test_failed_job_is_refunded(jclient, team):
    from sleuth.platform import credits

    team_id, auth = team
    job = _create(jclient, auth).json()
    jclient.put(
        _path(job["upload"]["url"]), content=b"\xff\xd8 not really a jpeg", headers={"Content-Type": "image/jpeg"}
    )
    jclient.post(_path(job["submit_url"]), headers=auth)
    assert _wait(jclient, auth, job["id"]) == "failed"
    res = jclient.get(_path(job["result_url"]), headers=auth).json()
    assert res["status"] == "error" and res["error"]["message"]
    assert jclient.get(f"/v1/detect/{job['id']}", headers=auth).json() == res
    assert credits.balance(jclient.app.state.platform.db, team_id).available == 500


def test_validation_and_isolation(jclient, team, other_team_key):
    _, auth = team
    assert _create(jclient, auth, operation="classify").status_code == 400
    assert _create(jclient, auth, content_type="image/gif").status_code == 400
    assert _create(jclient, auth, options={"threshold": 5}).json()["error"]["field"] == "threshold"
    assert _create(jclient, auth, options={"country": "Narnia"}).json()["error"]["field"] == "country"
    job = _create(jclient, auth).json()
    _, other = other_team_key
    assert jclient.get(f"/v1/jobs/{job['id']}", headers=other).status_code == 404
    assert jclient.post(f"/v1/jobs/{job['id']}/submit", headers=other).status_code == 404
    assert jclient.get("/v1/jobs", headers=other).json()["data"] == []


def test_list_cursor_and_filters(jclient, team):
    _, auth = team
    ids = [_create(jclient, auth, client_reference_id=f"cam-{i % 2}").json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        q = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = jclient.get(q, headers=auth).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    cam0 = jclient.get("/v1/jobs?client_reference_id=cam-0", headers=auth).json()["data"]
    assert len(cam0) == 3
    waiting = jclient.get("/v1/jobs?status=awaiting_upload", headers=auth).json()["data"]
    assert len(waiting) == 5
    assert jclient.get("/v1/jobs?status=bogus", headers=auth).status_code == 400


def test_burst_of_200_jobs_drains_and_sync_stays_responsive(jclient, team):
    _, auth = team
    ids = []
    for i in range(200):
        job = _create(jclient, auth, operation="filter", filename=f"b{i}.jpg", key=f"burst-{i}").json()
        jclient.put(
            _path(job["upload"]["url"]), content=BLANK if i % 2 else BEAR, headers={"Content-Type": "image/jpeg"}
        )
        ids.append(job["id"])
    for jid in ids:
        jclient.post(f"/v1/jobs/{jid}/submit", headers=auth)
    sync_ok = 0
    for _ in range(3):  # interactive requests while the burst drains
        r = jclient.post("/v1/batch-filter", headers=auth, files=[("images", ("s.jpg", BEAR))])
        sync_ok += r.status_code == 200
    deadline = time.time() + 600
    while time.time() < deadline:
        done = jclient.get("/v1/jobs?status=completed&limit=100", headers=auth).json()
        n = len(done["data"])
        cursor = done["next_cursor"]
        while cursor:
            page = jclient.get(f"/v1/jobs?status=completed&limit=100&cursor={cursor}", headers=auth).json()
            n += len(page["data"])
            cursor = page["next_cursor"]
        if n == 200:
            break
        time.sleep(0.5)
    assert n == 200 and sync_ok == 3
    from sqlalchemy import func, select

    from sleuth.db.models import JobItem

    with jclient.app.state.platform.db.session() as s:
        assert s.scalar(select(func.count()).select_from(JobItem).where(JobItem.status == "completed")) == 200
        assert s.scalar(select(func.max(JobItem.attempts))) == 1


def _run_job(c, auth, data, ref, **options):
    job = _create(c, auth, operation="filter", client_reference_id=ref, options={"threshold": 0.2, **options}).json()
    assert c.put(_path(job["upload"]["url"]), content=data, headers=job["upload"]["headers"]).status_code == 200
    c.post(_path(job["submit_url"]), headers=auth)
    assert _wait(c, auth, job["id"]) == "completed"
    return c.get(_path(job["result_url"]), headers=auth).json()


def test_repeat_detections_per_camera(jclient, team):
    """The sign posts in the squirrel camera's field recur on every frame: from the 10th frame of that camera
    (client_reference_id prefix) on they are flagged, and dropped with suppress_repeats; another camera, and
    an image without a camera, are not affected."""
    import json

    _, auth = team
    man = json.loads((CT / "manifest.json").read_text())["images"]
    frames = [(CT / r["path"]).read_bytes() for r in man if r["set"] == "pw_ft_squirrels"][:13]
    flagged = []
    for i, data in enumerate(frames):
        body = _run_job(jclient, auth, data, f"squirrel-cam/frame{i}.jpg")
        flagged.append(sum(bool(d.get("repeat_detection")) for d in body["detections"]))
    assert flagged[:9] == [0] * 9  # fewer than 10 images of the camera so far
    # from the 10th frame on the post is flagged wherever it is detected (INT8 scores differ a little between
    # CPUs, so which frames carry it above the threshold is not fixed: 9 or 10 of the first 10 here)
    assert sum(flagged[9:]) >= 1
    kept = _run_job(jclient, auth, frames[10], "squirrel-cam/frame10-again.jpg")
    dropped = _run_job(jclient, auth, frames[10], "squirrel-cam/frame10b.jpg", suppress_repeats=True)
    n_flag = sum(bool(d.get("repeat_detection")) for d in kept["detections"])
    assert n_flag >= 1
    assert len(dropped["detections"]) == len(kept["detections"]) - n_flag
    assert not any(d.get("repeat_detection") for d in dropped["detections"])
    other = _run_job(jclient, auth, frames[10], "other-cam/frame10.jpg")
    alone = _run_job(jclient, auth, frames[10], "frame10.jpg")  # no camera prefix, no EXIF serial
    for body in (other, alone):
        assert body["detections"] and not any(d.get("repeat_detection") for d in body["detections"])
    bad = _create(jclient, auth, options={"suppress_repeats": "maybe"})
    assert bad.status_code == 400 and "suppress_repeats" in bad.text
