"""``sleuth sweep`` removes exactly what the server's sweeper removes (one code path: sleuth.services.sweep).

The CLI runs in a process of its own, as an operator runs it: there nothing has imported the services, so a sweep
that relied on their import side effects would skip their clean-up (it once left expired deepfake jobs behind).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deepfake"))
from helpers import wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
BEAR = DATA / "camera_traps" / "speciesnet" / "american_black_bear.jpg"
pytestmark = [
    pytest.mark.skipif(not BEAR.is_file() or not (DATA / "models" / "aasist").is_dir(), reason="../shared/data absent"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


def _path(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def _populate(settings) -> dict[str, str]:
    """A deepfake detect, a wildlife sync detect and a wildlife async job, all finished, through the API."""
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team

    app = create_app(settings.model_copy(update={"workers": 1, "rate_limit_enabled": False}))
    with TestClient(app) as c:
        db = app.state.platform.db
        team = create_team(db, "sweep-cli")
        auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
        fake = c.post(
            "/detect", headers=auth | {"Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
        )
        assert fake.status_code == 200 and fake.json()["item"]["status"] == "completed", fake.text
        image = BEAR.read_bytes()
        wild = c.post("/v1/detect", headers=auth, files={"image": ("bear.jpg", image, "image/jpeg")})
        assert wild.status_code == 200, wild.text
        job = c.post("/v1/jobs", headers=auth, json={"filename": "bear.jpg", "content_type": "image/jpeg"}).json()
        assert c.put(_path(job["upload"]["url"]), content=image, headers=job["upload"]["headers"]).status_code == 200
        assert c.post(_path(job["submit_url"]), headers=auth).status_code == 202
        deadline = time.time() + 120
        while c.get(f"/v1/jobs/{job['id']}", headers=auth).json()["status"] != "completed":
            assert time.time() < deadline, "wildlife job did not finish"
            time.sleep(0.1)
    return {"deepfake": fake.json()["item"]["uuid"], "wildlife": wild.json()["id"], "job": job["id"]}


def _counts(db) -> dict[str, int]:
    from sqlalchemy import func, select

    from sleuth.db.models import Job, JobItem, StoredObject, StoredResult

    with db.session() as s:
        return {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Job, JobItem, StoredResult, StoredObject)
        }


def test_cli_sweep_removes_expired_deepfake_and_wildlife_rows_and_media(settings):
    from sqlalchemy import update

    from sleuth.db.engine import Database
    from sleuth.db.models import Job, StoredObject, StoredResult, utcnow
    from sleuth.platform.storage import make_storage

    _populate(settings)
    db, storage = Database(settings), make_storage(settings)
    before = _counts(db)
    assert before["jobs"] == 2 and before["job_items"] == 2 and before["results"] >= 2, before
    assert list(storage.iterate("media/")), "the deepfake media is stored"
    past = utcnow() - timedelta(seconds=1)
    with db.session() as s:
        for model in (Job, StoredResult, StoredObject):
            s.execute(update(model).values(expires_at=past))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "sweep"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "jobs=2" in out.stdout, out.stdout
    assert _counts(db) == {"jobs": 0, "job_items": 0, "results": 0, "stored_objects": 0}
    assert not list(storage.iterate("media/")) and not list(storage.iterate("results/"))
