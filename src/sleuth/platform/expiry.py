"""Expiry: delete results and stored media whose ``expires_at`` has passed."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from sleuth.db.engine import Database
from sleuth.db.models import StoredObject, StoredResult, utcnow
from sleuth.platform import secure_uploads
from sleuth.platform.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    results: int = 0
    objects: int = 0
    jobs: int = 0
    uploads: int = 0  # expired secure uploads (their media_token never used)


_extra_sweepers: list = []  # callables(db, storage, now) -> int, registered by the job platform


def register_sweeper(fn) -> None:
    if fn not in _extra_sweepers:
        _extra_sweepers.append(fn)


def sweep(db: Database, storage: Storage, now: datetime | None = None) -> SweepReport:
    now = now or utcnow()
    report = SweepReport()
    with db.session() as s:
        keys = list(s.scalars(select(StoredObject.key).where(StoredObject.expires_at <= now)))
    for key in keys:
        storage.delete(key)
        with db.session() as s:
            s.execute(delete(StoredObject).where(StoredObject.key == key))
        report.objects += 1
    with db.session() as s:
        res = s.execute(delete(StoredResult).where(StoredResult.expires_at <= now))
        report.results = int(res.rowcount or 0)  # type: ignore[attr-defined]
    report.uploads = secure_uploads.sweep(db, storage, now)
    for fn in _extra_sweepers:
        report.jobs += int(fn(db, storage, now) or 0)
    return report


def track_object(
    db: Database, key: str, team_id: str | None, kind: str, size: int, expires_at: datetime | None
) -> None:
    with db.session() as s:
        s.merge(StoredObject(key=key, team_id=team_id, kind=kind, size=size, expires_at=expires_at))


class Sweeper(threading.Thread):
    """Background thread that sweeps every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, storage: Storage, interval: float) -> None:
        super().__init__(name="sleuth-sweeper", daemon=True)
        self.db, self.storage, self.interval = db, storage, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                r = self.sweep_once()
                if r.objects or r.results or r.jobs or r.uploads:
                    log.info("expiry sweep: %s", r)
            except Exception:  # keep sweeping next time
                log.exception("expiry sweep failed")

    def sweep_once(self) -> SweepReport:
        return sweep(self.db, self.storage)

    def stop(self) -> None:
        self._stop_event.set()
