"""`sleuth worker` as a separate process: SIGKILL mid-batch loses nothing after a restart."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
pytestmark = [
    pytest.mark.skipif(not (DATA / "models" / "aasist").is_dir(), reason="../shared/data/models not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


def _counts(db, job_id):
    from sqlalchemy import func, select

    from sleuth.db.models import JobItem

    with db.read_session() as s:
        rows = dict(
            s.execute(
                select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)
            ).all()
        )
        attempts = list(s.scalars(select(JobItem.attempts).where(JobItem.job_id == job_id)))
    return rows, attempts


def _worker(env):
    return subprocess.Popen(
        [sys.executable, "-m", "sleuth.cli", "worker", "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_worker_mid_batch_loses_nothing(settings):
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from sleuth.api.app import create_app
    from sleuth.db.models import LedgerEntry
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    s = settings.model_copy(update={"workers": 0, "billing_enabled": True, "job_lease_s": 3.0})
    app = create_app(s)
    db = app.state.platform.db
    team = create_team(db, "kill")
    credits.grant(db, team.id, 100)
    auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
    n = 16
    with TestClient(app) as c:
        files = [("files[]", (f"k{i:02d}.wav", wav_bytes(2.0, seed=i), "audio/wav")) for i in range(n)]
        r = c.post("/detect/batch", headers=auth, files=files, data={"visualize": "false"})
        assert r.status_code == 202, r.text
        job_id = r.json()["item"]["uuid"]
    env = {
        **os.environ,
        "SLEUTH_BILLING_ENABLED": "true",
        "SLEUTH_JOB_LEASE_S": "3",
        "SLEUTH_JOB_HEARTBEAT_S": "0.5",
        "SLEUTH_WORKERS": "0",
    }
    first = _worker(env)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            rows, _ = _counts(db, job_id)
            if rows.get("completed", 0) >= 3 and rows.get("processing", 0) >= 1:
                break
            time.sleep(0.05)
        rows, _ = _counts(db, job_id)
        assert rows.get("completed", 0) < n, "the batch finished before the worker could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = rows
    finally:
        if first.poll() is None:
            first.kill()
    second = _worker(env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            rows, attempts = _counts(db, job_id)
            if rows.get("completed", 0) + rows.get("failed", 0) == n:
                break
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    rows, attempts = _counts(db, job_id)
    assert rows == {"completed": n}, (rows, killed_at)
    assert max(attempts) == 2 and min(attempts) == 1  # the item in flight at the kill ran again, once
    with db.read_session() as ss:
        captured = ss.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.team_id == team.id, LedgerEntry.kind == "capture"
            )
        )
    assert captured == n  # every file charged exactly once
    b = credits.balance(db, team.id)
    assert (b.available, b.reserved_open) == (100 - n, 0)
