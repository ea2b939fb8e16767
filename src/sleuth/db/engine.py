"""Database engine and sessions: SQLite (WAL, busy timeout) by default, PostgreSQL by URL.

``session()``/``write_session()`` are read/write units of work: on SQLite they take the
write lock up front (``BEGIN IMMEDIATE``), so a transaction never fails half-way when
upgrading a read snapshot to a write (WAL's ``SQLITE_BUSY_SNAPSHOT``, which the busy
timeout cannot wait out); writers queue on the busy timeout instead. ``read_session()``
is for pure reads (auth, GETs): a deferred transaction that never blocks or is blocked.
On PostgreSQL all three are ordinary transactions (row locks and ``FOR UPDATE SKIP
LOCKED`` do the work there).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from sleuth.settings import Settings

_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix) :])
    return None


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if settings.is_sqlite:
        path = _sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_size=20,
            max_overflow=40,
        )
        busy = int(settings.sqlite_busy_timeout_ms)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


def get_engine(settings: Settings) -> Engine:
    key = settings.database_url
    with _lock:
        eng = _engines.get(key)
        if eng is None:
            eng = make_engine(settings)
            _engines[key] = eng
        return eng


def dispose_engine(settings: Settings) -> None:
    with _lock:
        eng = _engines.pop(settings.database_url, None)
    if eng is not None:
        eng.dispose()


class Database:
    """Session factory bound to one settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = get_engine(settings)
        self._read_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        write_engine: Engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if settings.is_sqlite else self.engine
        )
        self._write_factory = sessionmaker(bind=write_engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._write_factory() as s, s.begin():
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with self._read_factory() as s, s.begin():
            yield s

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        with self._write_factory() as s, s.begin():
            yield s

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
