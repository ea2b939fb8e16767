"""Identity API end to end on the real speaker encoder and the shared real speech (5 LibriSpeech speakers)."""

from __future__ import annotations

import importlib.util
import io
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deepfake"))
from helpers import wav_bytes  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
AUDIO = DATA / "audio"
pytestmark = [
    pytest.mark.skipif(not AUDIO.is_dir(), reason="../shared/data/audio (real speech) not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]
SPEAKERS = ("367", "1998", "3331", "2033", "2609")


def _utt(speaker: str, n: int | str) -> Path:
    return next((AUDIO / "real" / speaker).glob(f"{speaker}-*-{int(n):04d}.flac"))


def _file(speaker: str, n: int) -> tuple[str, bytes, str]:
    p = _utt(speaker, n)
    return (p.name, p.read_bytes(), "audio/flac")


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    s = settings.model_copy(update={"workers": 1, "url_allow_private": "127.0.0.1", "job_heartbeat_s": 0.5})
    with TestClient(create_app(s)) as c:
        yield c


def _auth(c, name: str = "") -> dict[str, str]:
    from sleuth.platform.auth import create_key, create_team

    db = c.app.state.platform.db
    team = create_team(db, name or f"id-{uuid.uuid4().hex[:8]}")
    return {"Authorization": f"Bearer {create_key(db, team.id).key}"}


def _enrol(c, auth, speaker: str, n: int = 0, path: str = "/identity", **data):
    r = c.post(path, headers=auth, data={"name": f"speaker {speaker}", **data}, files={"file": _file(speaker, n)})
    assert r.status_code == 200, r.text
    return r.json()["item"]


def _stored(c) -> list[str]:
    return sorted(k for k in c.app.state.platform.storage.iterate("") if not k.startswith("."))


def test_enrol_by_upload_then_search_ranks_the_real_speakers(client) -> None:
    auth = _auth(client)
    ids = {}
    for i, spk in enumerate(SPEAKERS):
        item = _enrol(client, auth, spk, path=("/identity", "/api/v2/identity", "/v2/identity")[i % 3])
        assert item["name"] == f"speaker {spk}" and item["type"] == "voice" and item["model"] == "resemblyzer-0.1.4"
        assert item["duration"] > 0 and item["created_at"].endswith("Z")
        ids[spk] = item["uuid"]
    for spk in SPEAKERS:
        r = client.post("/identity/search", headers=auth, files={"file": _file(spk, 3)}, data={"top_k": "5"})
        assert r.status_code == 200, r.text
        matches = r.json()["item"]
        assert [set(m) for m in matches] == [{"uuid", "name", "confidence", "distance"}] * 5
        dist = [m["distance"] for m in matches]
        assert dist == sorted(dist) and all(0 <= d <= 1 for d in dist)
        conf = [m["confidence"] for m in matches]
        assert conf == sorted(conf, reverse=True)
        assert matches[0]["uuid"] == ids[spk], (spk, matches)  # another utterance of the same speaker comes first
        assert matches[0]["confidence"] > 0.5 > matches[-1]["confidence"]
    r = client.post("/v2/identity/search", headers=auth, files={"file": _file("2033", 5)}, data={"top_k": "2"})
    assert r.status_code == 200 and len(r.json()["item"]) == 2
    r = client.post("/identity/search", headers=auth, files={"file": _file("2033", 5)})  # default top_k 5
    assert len(r.json()["item"]) == 5


class _Files(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        name = self.path.strip("/").removesuffix(".flac")
        body = _utt(*name.split("_")).read_bytes() if "_" in name else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_enrol_by_media_token_and_by_url(client) -> None:
    auth = _auth(client)
    up = client.post("/secure_uploads", headers=auth, files={"file": _file("1998", 0)}).json()
    r = client.post("/identity", headers=auth, json={"name": "by token", "media_token": up["token"]})
    assert r.status_code == 200, r.text
    by_token = r.json()["item"]["uuid"]
    again = client.post("/identity", headers=auth, json={"name": "again", "media_token": up["token"]})
    assert again.status_code == 400 and again.json()["error"]["field"] == "media_token"  # used once
    assert _stored(client) == []  # the secure upload's file went with its token; the identity keeps no audio

    srv = HTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        r = client.post("/identity", headers=auth, json={"name": "by url", "audio_url": f"{base}/2609_0.flac"})
        assert r.status_code == 200, r.text
        by_url = r.json()["item"]["uuid"]
        r = client.post("/identity/search", headers=auth, json={"url": f"{base}/2609_0.flac", "top_k": 1})
        assert r.status_code == 200, r.text
        (top,) = r.json()["item"]
        assert top["uuid"] == by_url and top["distance"] < 1e-3 and top["confidence"] > 0.99
        tok = client.post("/secure_uploads", headers=auth, files={"file": _file("1998", 4)}).json()["token"]
        r = client.post("/identity/search", headers=auth, json={"media_token": tok, "top_k": 2})
        assert r.json()["item"][0]["uuid"] == by_token
        r = client.post("/identity", headers=auth, json={"name": "gone", "audio_url": f"{base}/missing.flac"})
        assert r.status_code == 400 and r.json()["error"]["field"] in ("audio_url", "url")
    finally:
        srv.shutdown()


def test_private_urls_are_refused_unless_allowed(settings) -> None:
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"workers": 0, "url_allow_private": ""}))) as c:
        auth = _auth(c)
        r = c.post("/identity", headers=auth, json={"name": "x", "audio_url": "http://127.0.0.1:9/a.flac"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "audio_url", r.text
        assert "SLEUTH_URL_ALLOW_PRIVATE" in r.json()["message"]
        r = c.post("/identity/search", headers=auth, json={"url": "http://10.0.0.1/a.flac"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "url", r.text


def test_list_get_delete_and_team_isolation(client) -> None:
    a, b = _auth(client), _auth(client)
    first = _enrol(client, a, "367")
    second = _enrol(client, a, "3331")
    r = client.get("/identity", headers=a, params={"page_size": 1})
    body = r.json()
    assert r.status_code == 200 and body["total_count"] == 2 and body["num_pages"] == 2
    assert [i["uuid"] for i in body["items"]] == [second["uuid"]]  # newest first
    assert client.get(f"/api/v2/identity/{first['uuid']}", headers=a).json()["item"] == first
    # team B sees none of it
    assert client.get("/identity", headers=b).json()["total_count"] == 0
    assert client.get(f"/identity/{first['uuid']}", headers=b).status_code == 404
    assert client.delete(f"/identity/{first['uuid']}", headers=b).status_code == 404
    r = client.post("/identity/search", headers=b, files={"file": _file("367", 2)})
    assert r.status_code == 200 and r.json()["item"] == []
    tok = client.post("/secure_uploads", headers=a, files={"file": _file("367", 2)}).json()["token"]
    r = client.post("/identity", headers=b, json={"name": "stolen", "media_token": tok})
    assert r.status_code == 404  # another team's token
    # delete
    r = client.delete(f"/identity/{first['uuid']}", headers=a)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert client.get(f"/identity/{first['uuid']}", headers=a).status_code == 404
    assert client.delete(f"/v2/identity/{first['uuid']}", headers=a).status_code == 404
    r = client.post("/identity/search", headers=a, files={"file": _file("367", 2)})
    assert [m["uuid"] for m in r.json()["item"]] == [second["uuid"]]


def test_search_identity_on_detect_and_batch(client) -> None:
    auth = _auth(client)
    target = _enrol(client, auth, "2033")
    _enrol(client, auth, "1998")
    r = client.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": _file("2033", 6)},
        data={"search_identity": "true"},
    )
    assert r.status_code == 200, r.text
    item = r.json()["item"]
    assert item["status"] == "completed" and item["metrics"]["label"] in ("fake", "real")
    found = item["identity_search"]
    assert found["error_message"] is None and found["results"][0]["uuid"] == target["uuid"]
    assert client.get(f"/detect/{item['uuid']}", headers=auth).json()["item"]["identity_search"] == found
    plain = client.post("/detect", headers={**auth, "Prefer": "wait"}, files={"file": _file("2033", 6)}).json()
    assert "identity_search" not in plain["item"]

    r = client.post(
        "/detect/batch",
        headers=auth,
        data={"search_identity": "true", "visualize": "false"},
        files=[("files[]", _file("1998", 5)), ("files[]", ("tone.wav", wav_bytes(2.0), "audio/wav"))],
    )
    assert r.status_code == 202, r.text
    batch = r.json()["item"]
    import time

    deadline = time.time() + 120
    while time.time() < deadline:
        state = client.get(f"/detect/batch/{batch['uuid']}", headers=auth).json()["item"]
        if state["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    items = [client.get(f"/detect/{u}", headers=auth).json()["item"] for u in batch["detect_uuids"]]
    assert items[0]["identity_search"]["results"][0]["name"] == "speaker 1998"
    assert all(i["status"] == "completed" for i in items)  # a file without a voice match does not fail its detect
    assert isinstance(items[1]["identity_search"]["results"], list)


def test_zero_retention_keeps_only_the_embedding(client) -> None:
    from sqlalchemy import select

    from sleuth.db.models import Identity

    auth = _auth(client)
    before = _stored(client)
    item = _enrol(client, auth, "3331", zero_retention_mode="true")
    assert _stored(client) == before  # no audio object was written
    with client.app.state.platform.db.session() as s:
        row = s.scalar(select(Identity).where(Identity.id == item["uuid"]))
        assert row is not None and len(row.embedding) == 256
        assert {c.name for c in Identity.__table__.columns} == {
            "id",
            "team_id",
            "name",
            "kind",
            "model",
            "embedding",
            "duration_s",
            "created_at",
            "updated_at",
        }


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "path, data, files, field, code",
    [
        ("/identity", {"name": "empty"}, {"file": ("empty.wav", b"")}, "file", None),
        ("/identity", {"name": "face"}, {"file": ("me.png", _png(), "image/png")}, "file", "face_identity_unavailable"),
        ("/identity", {"name": "jpeg"}, {"file": ("me.wav", _jpeg(), "audio/wav")}, "file", "media_type_mismatch"),
        ("/identity", {"name": "txt"}, {"file": ("notes.txt", b"hello", "text/plain")}, "file", None),
        ("/identity", {}, {"file": _file("367", 1)}, "name", None),
        ("/identity", {"name": "x", "type": "face"}, {"file": _file("367", 1)}, "type", "face_identity_unavailable"),
        ("/identity", {"name": "two", "media_token": "abc"}, {"file": _file("367", 1)}, "media_token", None),
        ("/identity/search", {"top_k": "0"}, {"file": _file("367", 1)}, "top_k", None),
        ("/identity/search", {"top_k": "21"}, {"file": _file("367", 1)}, "top_k", None),
        ("/identity/search", {"top_k": "two"}, {"file": _file("367", 1)}, "top_k", None),
        ("/identity/search", {}, None, "audio_url", None),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, path, data, files, field, code) -> None:
    auth = _auth(client)
    r = client.post(path, headers=auth, data=data, files=files) if files else client.post(path, headers=auth, json=data)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == field, err
    if code:
        assert err["code"] == code, err
    assert r.json()["item"] is None if "item" in r.json() else True
    if code == "face_identity_unavailable":
        assert "face-embedding model" in err["message"]


def test_no_speech_is_named(client) -> None:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 32000)
    auth = _auth(client)
    for path in ("/identity", "/identity/search"):
        r = client.post(path, headers=auth, data={"name": "silence"}, files={"file": ("quiet.wav", buf.getvalue())})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "no_speech" and r.json()["error"]["field"] == "file"
        assert "no speech" in r.json()["message"]
    r = client.post("/identity", headers=auth, json={"name": "x", "url": 5})
    assert r.status_code == 400 and r.json()["error"]["field"] == "audio_url"


def _mp4(flac: Path | None, seconds: float = 3.0) -> bytes:
    """A small 64x64 mp4 whose audio track is ``flac`` (AAC), or a silent one (no audio stream) when None."""
    import av
    import numpy as np
    import soundfile as sf

    wav, sr = sf.read(str(flac), dtype="float32") if flac is not None else (np.zeros(0, np.float32), 16000)
    dur = len(wav) / sr if flac is not None else seconds
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        v = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = c.add_stream("aac", rate=sr) if flac is not None else None  # every stream before the first packet
        if a is not None:
            a.layout = "mono"
        for i in range(int(dur * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), (i * 7) % 255, np.uint8), format="rgb24")
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            pcm = (wav * 32767).astype(np.int16)
            for s in range(0, len(pcm), 1024):
                frame = av.AudioFrame.from_ndarray(pcm[None, s : s + 1024], format="s16", layout="mono")
                frame.sample_rate = sr
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return buf.getvalue()


def test_a_videos_audio_track_is_a_voice_and_a_silent_video_is_named(client) -> None:
    auth = _auth(client)
    clip = _mp4(_utt("2609", 0))
    r = client.post("/identity", headers=auth, data={"name": "from video"}, files={"file": ("talk.mp4", clip)})
    assert r.status_code == 200, r.text
    vid = r.json()["item"]["uuid"]
    _enrol(client, auth, "367")
    r = client.post("/identity/search", headers=auth, files={"file": _file("2609", 2)})
    assert r.json()["item"][0]["uuid"] == vid
    silent = _mp4(None)
    r = client.post("/identity/search", headers=auth, files={"file": ("mute.mp4", silent)})
    assert r.status_code == 400 and r.json()["error"]["field"] == "file", r.text
    r = client.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": ("mute.mp4", silent)},
        data={"search_identity": "true", "visualize": "false"},
    )
    item = r.json()["item"]
    assert item["status"] == "completed", item
    assert item["identity_search"]["results"] == [] and item["identity_search"]["error_message"]
    r = client.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": ("talk.mp4", clip)},
        data={"search_identity": "true", "visualize": "false"},
    )
    assert r.json()["item"]["identity_search"]["results"][0]["uuid"] == vid
