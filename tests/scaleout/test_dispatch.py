"""Dispatch and the Celery task body on the real job platform (SQLite or PostgreSQL; Redis when up)."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import REDIS_URL, purge_redis  # noqa: E402

KIND = "scaleout-test"
CALLS: list[str] = []


def _handler(platform: Any, item: Any, job: Any) -> dict[str, Any]:
    CALLS.append(item.id)
    if item.filename == "retry.bin":
        from sleuth.platform.jobs import ItemFailure

        raise ItemFailure("transient", retryable=True)
    return {"echo": item.filename}


@pytest.fixture
def platform(settings):  # type: ignore[no-untyped-def]
    from sleuth.platform import jobs
    from sleuth.platform.context import Platform

    jobs.register_kind(KIND, _handler)
    CALLS.clear()
    yield Platform.create(settings)
    jobs._handlers.pop(KIND, None)


def _job(platform: Any, *names: str) -> tuple[str, list[str]]:
    from sleuth.platform import jobs
    from sleuth.platform.auth import create_team

    team = create_team(platform.db, f"t-{uuid.uuid4().hex[:8]}")
    specs = [jobs.ItemSpec(filename=n) for n in names]
    job = jobs.create_job(platform.db, team.id, KIND, specs)
    return job.id, [s.id for s in specs]


def _broker_up() -> bool:
    try:
        from kombu import Connection

        with Connection(REDIS_URL, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def _purge_queue(settings: Any, kind: str) -> None:
    from sleuth.platform.dispatch import celery_app, queue_name

    with celery_app(settings).connection_for_write() as conn:
        conn.default_channel.queue_purge(queue_name(settings, kind))


def test_local_dispatch_wakes_the_in_process_worker(platform) -> None:  # type: ignore[no-untyped-def]
    from sleuth.platform.dispatch import dispatch
    from sleuth.platform.worker import Worker

    w = Worker(platform)
    platform.extras["worker"] = w
    assert not w._wake.is_set()
    assert dispatch(platform, ["a", "b"]) == 0
    assert w._wake.is_set()
    assert dispatch(platform, []) == 0


def test_task_body_runs_once_and_duplicates_are_noops(platform) -> None:  # type: ignore[no-untyped-def]
    from sleuth.db.models import Job
    from sleuth.platform.dispatch import Runtime

    job_id, (a, b) = _job(platform, "a.bin", "b.bin")
    rt1, rt2 = Runtime(platform, [KIND], start=False), Runtime(platform, [KIND], start=False)
    assert rt1.execute(a) == "completed"
    assert rt2.execute(a) == "skipped"  # redelivered message: already done
    assert rt1.execute(a) == "skipped"
    assert rt2.execute(b) == "completed"
    assert rt1.execute("no-such-item") == "skipped"
    assert [a, b] == CALLS
    with platform.db.session() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.completed_count, job.failed_count) == ("completed", 2, 0)


def test_item_held_by_a_live_worker_is_not_taken(platform) -> None:  # type: ignore[no-untyped-def]
    from sleuth.platform import jobs
    from sleuth.platform.dispatch import Runtime

    _job_id, (a,) = _job(platform, "a.bin")
    assert jobs.claim_item(platform.db, a, "other-worker")
    assert Runtime(platform, [KIND], start=False).execute(a) == "skipped"
    assert not CALLS


def test_retryable_failure_is_requeued_then_fails_after_max_attempts(platform) -> None:  # type: ignore[no-untyped-def]
    from sleuth.db.models import JobItem
    from sleuth.platform.dispatch import Runtime

    _job_id, (a,) = _job(platform, "retry.bin")
    rt = Runtime(platform, [KIND], start=False)
    outcomes = [rt.execute(a) for _ in range(platform.settings.job_max_attempts + 1)]
    assert outcomes == ["queued"] * (platform.settings.job_max_attempts - 1) + ["failed", "skipped"]
    with platform.db.session() as s:
        assert s.get(JobItem, a).attempts == platform.settings.job_max_attempts


def test_visibility_timeout_must_outlive_the_lease(settings) -> None:  # type: ignore[no-untyped-def]
    from sleuth.platform.dispatch import celery_app

    bad = settings.model_copy(update={"queue": "celery", "job_lease_s": 60.0, "celery_visibility_timeout_s": 30.0})
    with pytest.raises(ValueError, match="celery_visibility_timeout_s"):
        celery_app(bad)


def test_broker_down_is_logged_not_raised(platform, caplog) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("celery")
    from sleuth.platform.dispatch import dispatch

    _job_id, ids = _job(platform, "a.bin")
    platform.settings = platform.settings.model_copy(
        update={"queue": "celery", "broker_url": "redis://127.0.0.1:1/0", "celery_queue_prefix": "down"}
    )
    assert dispatch(platform, ids) == 0
    assert "could not publish 1 of 1 item(s)" in caplog.text


@pytest.mark.skipif(not _broker_up(), reason=f"broker not reachable at {REDIS_URL}")
def test_reaped_and_orphaned_items_are_republished(platform) -> None:  # type: ignore[no-untyped-def]
    """Celery mode: maintenance re-publishes what the reaper requeued; the orphan sweep what sat queued."""
    from sqlalchemy import update

    from sleuth.db.models import JobItem, utcnow
    from sleuth.platform import jobs
    from sleuth.platform.dispatch import Runtime, dispatch, queue_depth

    prefix = f"sleuth-unit-{uuid.uuid4().hex[:8]}"
    platform.settings = platform.settings.model_copy(
        update={"queue": "celery", "broker_url": REDIS_URL, "celery_queue_prefix": prefix, "celery_orphan_after_s": 60}
    )
    try:
        _job_id, (a, b, c) = _job(platform, "a.bin", "b.bin", "c.bin")
        assert queue_depth(platform.settings, KIND) == 0
        assert dispatch(platform, [a]) == 1  # kind looked up from the database
        assert queue_depth(platform.settings, KIND) == 1
        # b: claimed by a worker that died (lease long expired) -> reaped and re-published
        assert jobs.claim_item(platform.db, b, "dead-worker")
        old = utcnow() - timedelta(seconds=600)
        with platform.db.session() as s:
            s.execute(update(JobItem).where(JobItem.id == b).values(lease_until=old, started_at=old))
            s.execute(update(JobItem).where(JobItem.id == c).values(created_at=old))  # c: its message was lost
        rt = Runtime(platform, [KIND], start=False)
        rt.maintain()
        assert queue_depth(platform.settings, KIND) == 2  # a (original) + b (reaped)
        with platform.db.session() as s:
            row = s.get(JobItem, b)
            assert (row.status, row.worker_id) == ("queued", None) and "dead-worker" in (row.error or "")
        assert rt.republish_orphans() == 0  # queue not empty: the waiting messages will get there
        for item_id in (a, b):
            assert rt.execute(item_id) == "completed"
        _purge_queue(platform.settings, KIND)
        assert rt.republish_orphans() == 1  # c only: a and b are done
        assert queue_depth(platform.settings, KIND) == 1
    finally:
        _purge_queue(platform.settings, KIND)
        purge_redis(prefix)
