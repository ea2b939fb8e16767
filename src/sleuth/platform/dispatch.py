"""Dispatch of queued job items to workers: an in-process wake-up or a Celery queue.

``SLEUTH_QUEUE=local`` (default): the API process runs :class:`~sleuth.platform.worker.Worker`
threads that poll the database; :func:`dispatch` only wakes them.

``SLEUTH_QUEUE=celery``: :func:`dispatch` publishes one message per item id to the queue
``<celery_queue_prefix>.<kind>`` and ``sleuth worker --celery`` runs Celery workers whose one
task, ``sleuth.run_item(item_id)``, does :func:`~sleuth.platform.jobs.claim_item` then
:func:`~sleuth.platform.jobs.run_item` — the same code path as the embedded workers. The
database stays the source of truth: a message is only a hint that an item may be runnable.

* A duplicated or redelivered message finds the item already ``processing`` (a live worker
  holds its lease) or terminal, and is a no-op; completion is guarded by
  ``status='processing' AND worker_id`` so nothing is ever completed or charged twice.
* Messages are acknowledged after the item ran (``acks_late``), one at a time per thread
  (``worker_prefetch_multiplier=1``), rejected back to the queue if the worker process is
  lost, and the broker's ``visibility_timeout`` (Redis/SQS) must exceed the longest item.
* A message can still be lost (the publisher crashed after committing, the broker lost
  it, or it was acked by a worker that then died mid-item). Every worker process therefore
  runs a maintenance thread: it heart-beats its in-flight items, runs the reaper and
  re-publishes the items the reaper put back to ``queued``, and, when a kind's queue is
  empty, re-publishes items that have sat ``queued`` longer than ``celery_orphan_after_s``.

Workers advertise what they serve through a Celery broadcast command, ``sleuth_info``
(:func:`list_workers`, ``sleuth workers``): job kinds, queues, the models loaded in the
process, the ONNX Runtime providers, in-flight items.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sleuth.db.models import Job, JobItem, utcnow
from sleuth.platform import jobs
from sleuth.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

    from sleuth.platform.context import Platform

log = logging.getLogger(__name__)

TASK_NAME = "sleuth.run_item"
INFO_COMMAND = "sleuth_info"


# --------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------


def queue_name(settings: Settings, kind: str) -> str:
    return f"{settings.celery_queue_prefix}.{kind}"


def dispatch(platform: Platform, item_ids: Sequence[str], kind: str | None = None) -> int:
    """Tell workers that ``item_ids`` (already committed as ``queued``) can run.

    Local mode wakes the in-process worker and returns 0. Celery mode publishes one
    ``sleuth.run_item`` message per item to its kind's queue (``kind`` given, or looked up)
    and returns how many were published. A broker failure is logged, not raised: the items
    are durable in the database and a worker's orphan sweep publishes them again later.
    """
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return 0
    settings = platform.settings
    if settings.queue != "celery":
        worker = platform.extras.get("worker")
        if worker is not None:
            worker.wake()  # type: ignore[attr-defined]
        return 0
    by_kind: dict[str, list[str]]
    if kind is not None:
        by_kind = {kind: ids}
    else:
        by_kind = {}
        with platform.db.session() as s:
            q = select(JobItem.id, Job.kind).join(Job, Job.id == JobItem.job_id).where(JobItem.id.in_(ids))
            for item_id, k in s.execute(q):
                by_kind.setdefault(k, []).append(item_id)
    sent = 0
    try:
        app = celery_app(settings)
        task = app.tasks[TASK_NAME]
        with app.producer_or_acquire() as producer:
            for k, kind_ids in by_kind.items():
                q_name = queue_name(settings, k)
                for item_id in kind_ids:
                    task.apply_async(
                        args=[item_id],
                        queue=q_name,
                        producer=producer,
                        retry=True,
                        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                    )
                    sent += 1
    except Exception as e:  # broker down: the orphan sweep re-publishes later
        log.error(
            "could not publish %d of %d item(s) to the broker (%s: %s); they stay queued in the database "
            "and a worker re-publishes them after celery_orphan_after_s",
            len(ids) - sent,
            len(ids),
            type(e).__name__,
            e,
        )
    return sent


# --------------------------------------------------------------------------------------
# The Celery app
# --------------------------------------------------------------------------------------

_apps: dict[tuple[str, str, float], Celery] = {}
_apps_lock = threading.Lock()


def celery_app(settings: Settings | None = None) -> Celery:
    """The Celery app for ``settings`` (one per broker/prefix per process)."""
    settings = settings or get_settings()
    if settings.celery_visibility_timeout_s <= settings.job_lease_s:
        raise ValueError(
            f"celery_visibility_timeout_s ({settings.celery_visibility_timeout_s:g}) must be longer than "
            f"job_lease_s ({settings.job_lease_s:g}) and than the longest item"
        )
    key = (settings.broker_url, settings.celery_queue_prefix, settings.celery_visibility_timeout_s)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            app = _apps[key] = _make_app(settings)
        return app


def _make_app(settings: Settings) -> Celery:
    try:
        from celery import Celery
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("SLEUTH_QUEUE=celery needs Celery: pip install 'sleuth[celery]'") from e

    prefix = settings.celery_queue_prefix
    app = Celery("sleuth", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=f"{prefix}.default",
        task_create_missing_queues=True,
        # Redis/SQS: an unacked message is redelivered after this; it must outlive the longest item.
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        # broadcast commands (sleuth_info) and events stay among the workers of this prefix
        control_exchange=f"{prefix}.control",
        event_exchange=f"{prefix}.events",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(_run_item_task)
    _register_info_command()
    return app


def _run_item_task(item_id: str) -> str:
    return execute(item_id)


_info_registered = False


def _register_info_command() -> None:
    global _info_registered
    if _info_registered:
        return
    from celery.worker.control import inspect_command

    @inspect_command(name=INFO_COMMAND)  # type: ignore[untyped-decorator,unused-ignore]
    def _sleuth_info(state: Any, **_: Any) -> dict[str, Any]:
        return worker_info()

    _info_registered = True


def list_workers(settings: Settings | None = None, timeout: float = 1.0) -> dict[str, dict[str, Any]]:
    """Ask every live Celery worker what it serves: ``{celery hostname: info}`` (see :func:`worker_info`)."""
    app = celery_app(settings)
    replies = app.control.broadcast(INFO_COMMAND, reply=True, timeout=timeout)
    out: dict[str, dict[str, Any]] = {}
    for reply in replies or []:
        for host, info in reply.items():
            out[host] = info
    return out


# --------------------------------------------------------------------------------------
# Worker side: one runtime per process (platform, id, in-flight items, maintenance thread)
# --------------------------------------------------------------------------------------


class Runtime:
    """What a worker process shares between its task threads."""

    def __init__(
        self, platform: Platform, kinds: list[str] | None = None, preload: Sequence[str] = (), start: bool = True
    ) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.worker_id = jobs.worker_name()
        self.kinds = sorted(kinds) if kinds else sorted(jobs._handlers)
        self.preload = list(preload)
        self.started_at = time.time()
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_orphan_sweep = time.monotonic() - random.uniform(0, self._orphan_period())
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- items -----------------------------------------------------------------------
    def execute(self, item_id: str) -> str:
        db = self.platform.db
        if not jobs.claim_item(db, item_id, self.worker_id):
            return "skipped"  # done, processing elsewhere, or not ready: the database decides
        with self._lock:
            self._inflight.add(item_id)
        try:
            outcome = jobs.run_item(self.platform, item_id, self.worker_id)
        finally:
            with self._lock:
                self._inflight.discard(item_id)
        if outcome == "queued":  # retryable failure: publish it again (attempts are bounded)
            dispatch(self.platform, [item_id])
        return outcome or "lost"

    def inflight(self) -> list[str]:
        with self._lock:
            return sorted(self._inflight)

    # -- maintenance -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sleuth-celery-maintenance", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _orphan_period(self) -> float:
        return max(2.0, self.settings.celery_orphan_after_s / 4)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.job_heartbeat_s):
            try:
                self.maintain()
            except Exception:
                log.exception("worker maintenance failed")

    def maintain(self) -> None:
        """One round: heartbeat in-flight items, reap dead workers' items, re-publish lost ones."""
        db = self.platform.db
        jobs.heartbeat(db, self.worker_id, self.inflight())
        requeued: list[str] = []
        jobs.reap(db, requeued=requeued)
        if requeued:
            log.warning("re-publishing %d item(s) reaped from dead workers", len(requeued))
            dispatch(self.platform, requeued)
        orphan_after = self.settings.celery_orphan_after_s
        if orphan_after > 0 and time.monotonic() - self._last_orphan_sweep >= self._orphan_period():
            self._last_orphan_sweep = time.monotonic()
            self.republish_orphans()

    def republish_orphans(self, limit: int = 1000) -> int:
        """Re-publish items queued longer than ``celery_orphan_after_s`` whose kind's queue is empty."""
        cutoff = utcnow() - timedelta(seconds=self.settings.celery_orphan_after_s)
        total = 0
        for kind in self.kinds:
            depth = queue_depth(self.settings, kind)
            if depth is None or depth > 0:
                continue  # messages are still waiting: they will reach the queued items
            with self.platform.db.session() as s:
                ids = list(
                    s.scalars(
                        select(JobItem.id)
                        .join(Job, Job.id == JobItem.job_id)
                        .where(JobItem.status == "queued", Job.kind == kind, JobItem.created_at < cutoff)
                        .where(JobItem.started_at.is_(None) | (JobItem.started_at < cutoff))
                        .order_by(JobItem.created_at)
                        .limit(limit)
                    )
                )
            if ids:
                log.warning("re-publishing %d %s item(s) queued since before %s", len(ids), kind, cutoff)
                total += dispatch(self.platform, ids, kind)
        return total

    def info(self) -> dict[str, Any]:
        from sleuth.engine.registry import loaded_models
        from sleuth.engine.runtime import default_providers

        try:
            providers = list(default_providers(self.settings.providers))
        except Exception as e:  # report, never fail the broadcast
            providers = [f"error: {e}"]
        return {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "kinds": self.kinds,
            "queues": [queue_name(self.settings, k) for k in self.kinds],
            "models": loaded_models(),
            "preload": self.preload,
            "providers": providers,
            "inflight": len(self.inflight()),
            "started_at": self.started_at,
        }


_runtime: Runtime | None = None
_runtime_pid = 0
_runtime_lock = threading.Lock()


def init_runtime(
    platform: Platform | None = None, kinds: list[str] | None = None, preload: Sequence[str] = ()
) -> Runtime:
    """Create this process's worker runtime (handlers loaded, models preloaded, maintenance started)."""
    global _runtime, _runtime_pid
    from sleuth.services import load_handlers

    with _runtime_lock:
        if _runtime is not None and _runtime_pid == os.getpid():
            return _runtime
        load_handlers()
        if platform is None:
            from sleuth.platform.context import Platform

            platform = Platform.create(get_settings().model_copy(update={"queue": "celery"}))
        if preload:
            from sleuth.engine.registry import get_model

            for name in preload:
                get_model(name, platform.settings)  # once per process; fails loudly before serving
        _runtime, _runtime_pid = Runtime(platform, kinds, preload), os.getpid()
        return _runtime


def runtime() -> Runtime:
    """This process's runtime (created on first use: ``celery -A sleuth.platform.dispatch`` workers)."""
    rt = _runtime
    if rt is not None and _runtime_pid == os.getpid():
        return rt
    return init_runtime()


def execute(item_id: str) -> str:
    """The body of ``sleuth.run_item``: claim, run, record. Returns the outcome
    (``completed``, ``failed``, ``queued`` = retry, ``skipped`` = not claimable, ``lost``)."""
    return runtime().execute(item_id)


def worker_info() -> dict[str, Any]:
    rt = _runtime
    if rt is None or _runtime_pid != os.getpid():
        return {"pid": os.getpid(), "host": socket.gethostname(), "ready": False}
    return rt.info() | {"ready": True}


def queue_depth(settings: Settings, kind: str) -> int | None:
    """Messages waiting in the kind's queue (None if the broker cannot say)."""
    app = celery_app(settings)
    try:
        with app.connection_for_write() as conn:
            ok = conn.default_channel.queue_declare(queue=queue_name(settings, kind), passive=True)
            return int(ok.message_count)
    except Exception as e:
        # 404 = no such queue (Redis drops an empty list; AMQP: never declared): nothing waiting
        if "NOT_FOUND" in str(e) or getattr(e, "reply_code", 0) == 404 or str(getattr(e, "code", "")) == "404":
            return 0
        log.debug("queue depth of %s unknown: %s", kind, e)
        return None


def __getattr__(name: str) -> Any:
    """``celery -A sleuth.platform.dispatch worker`` finds the app here (settings from the environment)."""
    if name in ("app", "celery"):
        return celery_app(get_settings())
    raise AttributeError(name)
