"""Secure uploads (``POST /secure_uploads``) and their single-use ``media_token`` on ``POST /detect``."""

from __future__ import annotations

import importlib.util
import io
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
needs_mirror = pytest.mark.skipif(not (DATA / "models" / "mesonet").is_dir(), reason="../shared/data not present")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once")


def _app(settings, **update):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    return TestClient(create_app(settings.model_copy(update={"workers": 0, **update})))


def _key(c, name: str = "") -> tuple[str, str]:
    from sleuth.platform.auth import create_key, create_team

    db = c.app.state.platform.db
    team = create_team(db, name or f"t-{uuid.uuid4().hex[:8]}")
    return team.id, create_key(db, team.id).key


def _upload(c, key, name="clip.wav", data=None, path="/secure_uploads", scheme="Bearer"):
    auth = f"Token token={key}" if scheme == "Token" else f"Bearer {key}"
    return c.post(path, headers={"Authorization": auth}, files={"file": (name, data or wav_bytes(1.0))})


def _detect(c, key, body, **headers):
    return c.post("/detect", headers={"Authorization": f"Bearer {key}", **headers}, json=body)


def _uploads(c):
    from sqlalchemy import select

    from sleuth.db.models import SecureUpload

    with c.app.state.platform.db.session() as s:
        return list(s.scalars(select(SecureUpload)))


def _stored(c, prefix=""):
    return sorted(k for k in c.app.state.platform.storage.iterate(prefix) if not k.startswith("."))


def test_upload_then_detect_uses_the_token_once(settings):
    with _app(settings) as c:
        team, key = _key(c)
        for path, scheme in (
            ("/secure_uploads", "Bearer"),
            ("/api/v2/secure_uploads", "Token"),
            ("/v2/secure_uploads", "Token"),
        ):
            r = _upload(c, key, path=path, scheme=scheme)
            assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["media_type"] == "audio" and body["filename"] == "clip.wav"
        assert body["size"] == len(wav_bytes(1.0)) and body["expires_at"].endswith("Z")
        assert len(_uploads(c)) == 3 and len(_stored(c, f"uploads/{team}/")) == 3
        r = _detect(c, key, {"media_token": body["token"], "frame_length": 1})
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        assert item["filename"] == "clip.wav" and item["media_type"] == "audio" and item["status"] == "processing"
        # the detect keeps its own copy of the media; the upload's row and file are gone
        assert len(_uploads(c)) == 2 and len(_stored(c, f"uploads/{team}/")) == 2
        assert _stored(c, f"media/{team}/") and c.get(
            item["url"], headers={"Authorization": f"Bearer {key}"}
        ).content == wav_bytes(1.0)
        again = _detect(c, key, {"media_token": body["token"]})
        assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_media_token"
        assert again.json()["error"]["field"] == "media_token" and "already been used" in again.json()["message"]
        assert again.json()["item"] is None


def test_media_token_as_a_multipart_field_and_one_input_only(settings):
    with _app(settings) as c:
        _team, key = _key(c)
        auth = {"Authorization": f"Bearer {key}"}
        token = _upload(c, key).json()["token"]
        both = c.post("/detect", headers=auth, data={"media_token": token}, files={"file": ("a.wav", wav_bytes(1.0))})
        assert both.status_code == 400 and "exactly one" in both.json()["message"]
        both = _detect(c, key, {"media_token": token, "url": "https://example.org/a.wav"})
        assert both.status_code == 400 and both.json()["error"]["field"] == "media_token"
        r = c.post("/api/v2/detect", headers=auth, data={"media_token": token, "frame_length": "1"})
        assert r.status_code == 200, r.text
        assert r.json()["item"]["filename"] == "clip.wav"
        batch = c.post(
            "/detect/batch", headers=auth, data={"media_token": token}, files={"files[]": ("a.wav", wav_bytes(1.0))}
        )
        assert batch.status_code == 400 and batch.json()["error"]["code"] == "unsupported_option"


@pytest.mark.parametrize(
    "name, data",
    [("notes.txt", b"hello"), ("empty.wav", b""), ("text.png", b"plain text, not an image"), ("x" * 300 + ".wav", b"")],
)
def test_upload_follows_the_detect_intake_rules(settings, name, data):
    with _app(settings) as c:
        _team, key = _key(c)
        auth = {"Authorization": f"Bearer {key}"}
        detect = c.post("/detect", headers=auth, files={"file": (name, data)})
        r = c.post("/secure_uploads", headers=auth, files={"file": (name, data)})
        assert detect.status_code == r.status_code == 400, r.text
        assert r.json()["error"]["code"] == detect.json()["error"]["code"] and r.json()["error"]["field"] == "file"
        assert not _uploads(c) and not _stored(c, "uploads/")


def test_upload_size_limit_and_missing_file(settings):
    with _app(settings, max_detect_upload_mb=0.05) as c:
        _team, key = _key(c)
        auth = {"Authorization": f"Bearer {key}"}
        assert _upload(c, key, data=wav_bytes(1.0)).status_code == 200  # 32 kB
        big = _upload(c, key, data=wav_bytes(2.0))  # 64 kB > 50 kB
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        assert c.post("/secure_uploads", headers=auth, data={"x": "1"}).json()["error"]["field"] == "file"
        assert c.post("/secure_uploads", headers=auth, json={"file": "x"}).status_code == 400
        two = c.post(
            "/secure_uploads",
            headers=auth,
            files=[("file", ("a.wav", wav_bytes(0.1))), ("file", ("b.wav", wav_bytes(0.1)))],
        )
        assert two.status_code == 400
        assert c.post("/secure_uploads", files={"file": ("a.wav", wav_bytes(0.1))}).status_code == 401
        assert len(_uploads(c)) == 1


def test_another_teams_token_is_404_and_malformed_or_forged_tokens(settings):
    with _app(settings) as c:
        _a, key_a = _key(c)
        _b, key_b = _key(c)
        token = _upload(c, key_a).json()["token"]
        other = _detect(c, key_b, {"media_token": token})
        assert other.status_code == 404 and other.json()["item"] is None
        upload_id, exp, sig = token.split(".")
        forged = _detect(c, key_a, {"media_token": f"{upload_id}.{int(exp) + 3600}.{sig}"})  # a longer life
        assert forged.status_code == 404
        for bad in ("nope", "a.b.c", 12, ""):
            r = _detect(c, key_a, {"media_token": bad})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media_token", (bad, r.text)
        # none of that used the token up
        assert _detect(c, key_a, {"media_token": token}).status_code == 200


def test_expired_token_is_400_before_and_after_the_sweep(settings, monkeypatch):
    from sleuth.db.models import utcnow
    from sleuth.platform import expiry, secure_uploads

    with _app(settings, media_token_ttl_s=60) as c:
        team, key = _key(c)
        token = _upload(c, key).json()["token"]
        later = utcnow() + timedelta(seconds=61)
        monkeypatch.setattr(secure_uploads, "utcnow", lambda: later)
        r = _detect(c, key, {"media_token": token})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media_token" and "expired" in r.text
        platform = c.app.state.platform
        # the sweeper before the expiry keeps it, after removes the row and the file
        assert expiry.sweep(platform.db, platform.storage, utcnow()).uploads == 0
        report = expiry.sweep(platform.db, platform.storage, later)
        assert report.uploads == 1 and not _uploads(c) and not _stored(c, f"uploads/{team}/")
        r = _detect(c, key, {"media_token": token})  # the same answer once the row is gone
        assert r.status_code == 400 and "expired" in r.json()["message"]


def test_a_refused_detect_keeps_the_token(settings):
    from sleuth.platform import credits

    with _app(settings, billing_enabled=True) as c:
        team, key = _key(c)
        token = _upload(c, key).json()["token"]
        broke = _detect(c, key, {"media_token": token})
        assert broke.status_code == 402, broke.text
        bad_option = _detect(c, key, {"media_token": token, "frame_length": 9})
        assert bad_option.status_code == 400 and bad_option.json()["error"]["field"] == "frame_length"
        assert len(_uploads(c)) == 1 and _uploads(c)[0].claimed_at is None
        credits.grant(c.app.state.platform.db, team, 5)
        assert _detect(c, key, {"media_token": token}).status_code == 200
        assert not _uploads(c)


def test_consume_is_single_use_under_concurrency_and_released_on_failure(settings):
    from sleuth.platform import secure_uploads
    from sleuth.platform.errors import SleuthError

    with _app(settings) as c:
        team, key = _key(c)
        token = _upload(c, key).json()["token"]
        platform = c.app.state.platform
        with pytest.raises(RuntimeError), secure_uploads.consume(platform, team, token) as media:
            assert media.path.read_bytes() == wav_bytes(1.0) and media.media_type == "audio"
            with pytest.raises(SleuthError) as busy, secure_uploads.consume(platform, team, token):
                pass
            assert busy.value.status == 400 and "another request" in busy.value.message
            raise RuntimeError("the consumer failed")
        with secure_uploads.consume(platform, team, token) as media:  # released: usable again
            assert media.filename == "clip.wav"
        assert not _uploads(c) and not _stored(c, "uploads/")
        with pytest.raises(SleuthError) as used, secure_uploads.consume(platform, team, token):
            pass
        assert used.value.code == "invalid_media_token"


@needs_mirror
@needs_torch
def test_zero_retention_detect_of_a_secure_upload_keeps_nothing(settings):
    with _app(settings) as c:
        team, key = _key(c)
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (120, 90, 60)).save(buf, "PNG")
        token = _upload(c, key, name="still.png", data=buf.getvalue()).json()["token"]
        r = _detect(c, key, {"media_token": token, "zero_retention_mode": True}, Prefer="wait")
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        assert item["status"] == "completed" and item["zero_retention_mode"] is True and item["url"] is None
        assert item["file_deleted_at"] and item["image_metrics"]["label"] == "unknown"  # no face in a flat image
        assert not _stored(c, f"uploads/{team}/") and not _stored(c, f"media/{team}/") and not _uploads(c)


def test_consume_from_an_object_store_gives_a_temporary_local_copy(settings, monkeypatch):
    from sleuth.platform import secure_uploads

    with _app(settings) as c:
        team, key = _key(c)
        token = _upload(c, key).json()["token"]
        platform = c.app.state.platform
        monkeypatch.setattr(platform.storage, "local_path", lambda key: None)  # as S3Storage answers
        with secure_uploads.consume(platform, team, token) as media:
            assert media.path.read_bytes() == wav_bytes(1.0) and media.path.suffix == ".wav"
            assert not str(media.path).startswith(str(settings.storage_dir))
        assert not media.path.exists() and not _stored(c, "uploads/")
