from __future__ import annotations

import io
from datetime import timedelta

import pytest


def test_local_storage_roundtrip(tmp_path):
    from sleuth.platform.storage import LocalStorage, StorageError

    st = LocalStorage(tmp_path / "s")
    assert st.put("media/t1/a.bin", b"abc") == 3
    assert st.put("media/t1/b.bin", io.BytesIO(b"x" * 3_000_000)) == 3_000_000
    assert st.get("media/t1/a.bin") == b"abc"
    assert st.exists("media/t1/b.bin")
    assert sorted(st.iterate("media/")) == ["media/t1/a.bin", "media/t1/b.bin"]
    st.delete("media/t1/a.bin")
    st.delete("media/t1/a.bin")  # idempotent
    assert not st.exists("media/t1/a.bin")
    with pytest.raises(KeyError):
        st.get("media/t1/a.bin")
    for bad in ["../x", "/abs", "a//b", "a/../b", ""]:
        with pytest.raises(StorageError):
            st.put(bad, b"")


def test_sweeper_deletes_expired(settings):
    from sleuth.db.models import StoredResult, utcnow
    from sleuth.platform.context import Platform
    from sleuth.platform.expiry import sweep, track_object

    p = Platform.create(settings)
    from sleuth.platform.auth import create_team

    team = create_team(p.db, "sweep").id
    now = utcnow()
    p.storage.put("media/old.bin", b"1")
    p.storage.put("media/new.bin", b"2")
    track_object(p.db, "media/old.bin", team, "media", 1, now - timedelta(seconds=1))
    track_object(p.db, "media/new.bin", team, "media", 1, now + timedelta(days=1))
    with p.db.session() as s:
        s.add(StoredResult(id="r-old", team_id=team, endpoint="/v1/detect", payload={}, expires_at=now))
        s.add(
            StoredResult(
                id="r-new", team_id=team, endpoint="/v1/detect", payload={}, expires_at=now + timedelta(days=1)
            )
        )
    rep = sweep(p.db, p.storage, now + timedelta(seconds=1))
    assert (rep.objects, rep.results) == (1, 1)
    assert not p.storage.exists("media/old.bin") and p.storage.exists("media/new.bin")
    with p.db.session() as s:
        assert s.get(StoredResult, "r-old") is None and s.get(StoredResult, "r-new") is not None


def test_settings_env_and_toml(tmp_path, monkeypatch):
    from sleuth.settings import Settings

    cfg = tmp_path / "sleuth.toml"
    cfg.write_text('port = 9001\nbilling_enabled = true\ndata_dir = "somewhere"\n')
    monkeypatch.setenv("SLEUTH_CONFIG", str(cfg))
    monkeypatch.delenv("SLEUTH_DATA_DIR", raising=False)
    monkeypatch.delenv("SLEUTH_DATABASE_URL", raising=False)
    s = Settings()
    assert s.port == 9001 and s.billing_enabled is True
    assert s.database_url == "sqlite:///somewhere/sleuth.db"
    monkeypatch.setenv("SLEUTH_PORT", "9002")
    assert Settings().port == 9002  # environment beats the file
    monkeypatch.delenv("SLEUTH_CONFIG")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLEUTH_PORT")
    assert Settings().port == 9001  # ./sleuth.toml is picked up


def test_db_upgrade_cli_is_idempotent(settings):
    from typer.testing import CliRunner

    from sleuth.cli import app

    r = CliRunner().invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0 and "revision" in r.stdout
    r = CliRunner().invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0
