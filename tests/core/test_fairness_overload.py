"""Fair claims across teams and the bounded job queue (platform.fairness): orders and status codes, no timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deepfake"))
from helpers import wav_bytes  # noqa: E402


def _team(db, name):
    from sleuth.platform.auth import create_team

    return create_team(db, name).id


def _job(db, team, n, lane="job"):
    from sleuth.platform import jobs

    job = jobs.create_job(db, team, "test-kind", [jobs.ItemSpec(filename=f"{i}.bin") for i in range(n)], lane=lane)
    return job.id


def _owner(db, item_ids):
    from sleuth.db.models import JobItem

    with db.session() as s:
        return [s.get(JobItem, i).team_id for i in item_ids]


def test_a_one_file_batch_is_claimed_next_while_another_team_runs_50(db):
    from sleuth.platform import jobs

    a, b = _team(db, "bulk"), _team(db, "small")
    _job(db, a, 50)
    _job(db, b, 1)  # queued after all 50 of team a's items
    first = jobs.claim(db, "w1")
    second = jobs.claim(db, "w2")  # team a has one item processing, team b none
    assert _owner(db, first + second) == [a, b]
    rest = [jobs.claim(db, "w3")[0] for _ in range(3)]
    assert _owner(db, rest) == [a, a, a]  # team b has nothing left: team a keeps draining, in order
    from sleuth.db.models import JobItem

    with db.session() as s:
        seqs = [s.get(JobItem, i).seq for i in first + rest]
    assert seqs == [0, 1, 2, 3]


def test_teams_take_turns_by_items_processing(db):
    from sleuth.platform import jobs

    a, b, c = _team(db, "a"), _team(db, "b"), _team(db, "c")
    for t in (a, b, c):
        _job(db, t, 5)
    owners = _owner(db, [jobs.claim(db, f"w{k}")[0] for k in range(6)])
    assert owners == [a, b, c, a, b, c]


def test_interactive_lane_goes_first(db):
    from sleuth.platform import jobs

    a, b = _team(db, "batch"), _team(db, "single")
    _job(db, a, 3)
    single = _job(db, b, 1, lane="interactive")
    from sleuth.db.models import JobItem

    claimed = jobs.claim(db, "w1")
    with db.session() as s:
        assert s.get(JobItem, claimed[0]).job_id == single


def test_a_stream_of_single_uploads_does_not_starve_another_teams_batch(db):
    from sleuth.platform import jobs

    a, b = _team(db, "singles"), _team(db, "batch")
    for _ in range(3):
        _job(db, a, 1, lane="interactive")  # e.g. Prefer: wait uploads
    _job(db, b, 2)
    owners = _owner(db, [jobs.claim(db, f"w{k}")[0] for k in range(3)])
    assert owners == [a, b, a]  # lane first only among teams equally busy


def test_claims_filter_by_kind(db):
    from sleuth.platform import jobs

    a = _team(db, "k")
    jobs.create_job(db, a, "other-kind", [jobs.ItemSpec(filename="x")])
    assert jobs.claim(db, "w1", kinds=["test-kind"]) == []
    assert len(jobs.claim(db, "w1", kinds=["other-kind"])) == 1


def test_idle_teams_only_claims_skip_teams_with_an_item_processing(db):
    from sleuth.platform import jobs

    a, b = _team(db, "bulk"), _team(db, "small")
    _job(db, a, 5)
    assert _owner(db, jobs.claim(db, "w1", idle_teams_only=True)) == [a]  # nothing processing yet
    assert jobs.claim(db, "fair", idle_teams_only=True) == []  # team a has one processing: not an idle team
    _job(db, b, 1)
    assert _owner(db, jobs.claim(db, "fair", idle_teams_only=True)) == [b]
    assert jobs.claim(db, "fair", idle_teams_only=True) == []
    assert _owner(db, jobs.claim(db, "w2")) == [a]  # the ordinary claim still drains the busy team


def test_equally_busy_teams_are_ranked_by_their_recent_use_of_the_cores(db):
    from sleuth.platform import jobs

    heavy, light = _team(db, "heavy"), _team(db, "light")
    _job(db, heavy, 2)  # queued first
    _job(db, light, 2)
    used = {heavy: 12.0, light: 0.5}
    assert _owner(db, jobs.claim(db, "w1", usage=used.__getitem__)) == [light]  # not the oldest item's team
    assert _owner(db, jobs.claim(db, "w2", usage=used.__getitem__)) == [heavy]  # busy first: light has one running
    assert _owner(db, jobs.claim(db, "w3")) == [heavy]  # without usage: equally busy, the oldest queued item


def _blocking_worker(settings, db, fair_threads):
    """A Worker whose items of team 'bulk' block until released; other teams' items finish at once."""
    import threading

    from sleuth.db.models import JobItem
    from sleuth.platform import jobs
    from sleuth.platform.context import Platform
    from sleuth.platform.worker import Worker

    release = threading.Event()
    bulk = _team(db, "bulk")

    def handler(platform, item, job):
        if item.team_id == bulk:
            release.wait(60)
        return {"ok": True}

    jobs.register_kind("fair-kind", handler)
    platform = Platform.create(settings)
    w = Worker(platform, threads=2, poll_s=0.05, fair_threads=fair_threads, kinds=["fair-kind"]).start()

    def status(job_id):
        with db.session() as s:
            return [i.status for i in s.scalars(select(JobItem).where(JobItem.job_id == job_id))]

    return w, release, bulk, status


@pytest.mark.parametrize("fair_threads", [1, 0])
def test_a_small_batch_runs_while_another_team_fills_every_worker(settings, db, fair_threads):
    import time

    from sleuth.platform import jobs

    w, release, bulk, status = _blocking_worker(settings, db, fair_threads)
    try:
        big = jobs.create_job(db, bulk, "fair-kind", [jobs.ItemSpec(filename=f"{i}") for i in range(6)]).id
        deadline = time.monotonic() + 20
        while status(big).count("processing") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert status(big).count("processing") == 2  # both ordinary threads are held by the bulk team
        small = jobs.create_job(db, _team(db, "small"), "fair-kind", [jobs.ItemSpec(filename="one")]).id
        w.wake()
        deadline = time.monotonic() + (20 if fair_threads else 1.5)
        while status(small) != ["completed"] and time.monotonic() < deadline:
            time.sleep(0.02)
        if fair_threads:
            assert status(small) == ["completed"]  # claimed by the fair-share thread, not after a bulk item
            assert status(big).count("processing") == 2 and status(big).count("queued") == 4
        else:
            assert status(small) == ["queued"]  # without it the small batch waits for one of the bulk items
    finally:
        release.set()
        w.stop()


@pytest.mark.parametrize("caps", [{"max_queued_items_per_team": 3}, {"max_queued_items": 3}])
def test_full_queue_is_503_with_retry_after_and_writes_nothing(settings, caps):
    from sleuth.db.engine import Database
    from sleuth.db.models import Job, JobItem
    from sleuth.platform import credits
    from sleuth.platform.errors import SleuthError

    db = Database(settings.model_copy(update={"billing_enabled": True, **caps}))
    t = _team(db, "capped")
    credits.grant(db, t, 100)
    _job(db, t, 2)
    with pytest.raises(SleuthError) as ei:
        _job(db, t, 2)
    assert ei.value.status == 503 and ei.value.code == "queue_full"
    assert int(ei.value.headers["Retry-After"]) > 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert s.scalar(select(func.count()).select_from(JobItem)) == 2
    assert credits.balance(db, t).available == 98  # only the first job reserved
    _job(db, t, 1)  # exactly at the limit is fine


def test_submit_of_an_uploaded_job_is_refused_when_the_queue_is_full(settings):
    from sleuth.db.engine import Database
    from sleuth.platform import jobs
    from sleuth.platform.errors import SleuthError

    db = Database(settings.model_copy(update={"max_queued_items_per_team": 1}))
    t = _team(db, "uploads")
    _job(db, t, 1)
    waiting = jobs.create_job(db, t, "test-kind", [jobs.ItemSpec(filename="u")], status="awaiting_upload")
    with pytest.raises(SleuthError) as ei:
        jobs.start_job(db, waiting.id, "submit")
    assert ei.value.status == 503
    from sleuth.db.models import Job

    with db.session() as s:
        assert s.get(Job, waiting.id).status == "awaiting_upload"  # can be submitted again later


def test_detect_batch_answers_503_when_the_team_queue_is_full(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    app = create_app(settings.model_copy(update={"max_queued_items_per_team": 3, "billing_enabled": True}))
    with TestClient(app) as c:
        db = app.state.platform.db
        team = create_team(db, "df-capped")
        credits.grant(db, team.id, 50)
        auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
        w = wav_bytes(1.0)
        files = [("files[]", (f"{i}.wav", w, "audio/wav")) for i in range(4)]
        r = c.post("/detect/batch", headers=auth, files=files)
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) > 0
        body = r.json()
        assert body["success"] is False and body["item"] is None and body["error"]["code"] == "queue_full"
        assert credits.balance(db, team.id).available == 50  # nothing reserved, nothing stored
        ok = c.post("/detect/batch", headers=auth, files=files[:3])
        assert ok.status_code == 202, ok.text
        spec = c.get("/openapi.json").json()["paths"]
        for path, method in (("/detect/batch", "post"), ("/detect", "post"), ("/v1/jobs/{job_id}/submit", "post")):
            assert "503" in spec[path][method]["responses"], path
