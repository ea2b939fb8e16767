"""Shared fixtures.

The suite runs against SQLite by default. With ``SLEUTH_TEST_DATABASE_URL`` set to a
PostgreSQL URL (``.ci/run`` does a second pass that way) every database test runs on
PostgreSQL instead: one fresh database per test session, tables truncated between tests.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/support.py, shared by the test areas
from support import fresh_pg_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
MODELS_MIRROR = DATA / "models"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present (a user's clone)")

PG_URL = os.environ.get("SLEUTH_TEST_DATABASE_URL", "")

# The served MD-Lite graph is chosen per CPU by default (SLEUTH_DETECTOR_PRECISION=auto). The suite pins
# INT8 so that its expectations (model_version strings, boxes) are the same on every machine; the auto
# choice itself is tested in tests/detectors/test_mdlite_int8.py.
os.environ.setdefault("SLEUTH_DETECTOR_PRECISION", "int8")


def _pg_database() -> Iterator[str]:
    with fresh_pg_database(PG_URL) as url:
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    yield from _pg_database()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the whole run (CI sets SLEUTH_MODEL_CACHE to keep it between passes)."""
    env = os.environ.get("SLEUTH_MODEL_CACHE")
    if env:
        p = Path(env)
        p.mkdir(parents=True, exist_ok=True)
        return p
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None, model_cache: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from sleuth.settings import Settings, get_settings

    kwargs: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "model_cache": model_cache,
        "workers": 0,
        "sweep_interval_s": 3600.0,
    }
    if MODELS_MIRROR.is_dir():
        kwargs["model_mirror"] = MODELS_MIRROR
    if pg_url:
        kwargs["database_url"] = pg_url
    s = Settings(**kwargs)  # type: ignore[arg-type]
    # Code that calls get_settings() (CLI, registry) sees the same settings.
    monkeypatch.setenv("SLEUTH_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(model_cache))
    if MODELS_MIRROR.is_dir():
        monkeypatch.setenv("SLEUTH_MODEL_MIRROR", str(MODELS_MIRROR))
    if pg_url:
        monkeypatch.setenv("SLEUTH_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    from sleuth.db.migrate import upgrade

    upgrade(s)
    if pg_url:
        _truncate(s)
    yield s
    get_settings.cache_clear()
    if not pg_url:
        from sleuth.db.engine import dispose_engine

        dispose_engine(s)


def _truncate(s) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from sleuth.db.engine import get_engine
    from sleuth.db.models import Base

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine(s).begin() as c:
        c.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
def db(settings):  # type: ignore[no-untyped-def]
    from sleuth.db.engine import Database

    return Database(settings)


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    from sleuth.api.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def team_key(app):  # type: ignore[no-untyped-def]
    """(team_id, bearer headers) for a fresh team."""
    from sleuth.platform.auth import create_key, create_team

    db = app.state.platform.db
    team = create_team(db, f"team-{uuid.uuid4().hex[:8]}")
    key = create_key(db, team.id)
    return team.id, {"Authorization": f"Bearer {key.key}"}


@pytest.fixture
def other_team_key(app):  # type: ignore[no-untyped-def]
    from sleuth.platform.auth import create_key, create_team

    db = app.state.platform.db
    team = create_team(db, f"other-{uuid.uuid4().hex[:8]}")
    key = create_key(db, team.id)
    return team.id, {"Authorization": f"Bearer {key.key}"}


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests that touch the database get the ``db`` marker (the PostgreSQL pass runs ``-m db``)."""
    for item in items:
        if "settings" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
