"""Audio source tracing end to end: detect and batch options, the item field, the /audio_source_tracings routes."""

from __future__ import annotations

import importlib.util
import shutil
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
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is needed to build the ONNX once"),
]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture
def dclient(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    app = create_app(settings.model_copy(update={"workers": 1, "job_heartbeat_s": 0.5}))
    with TestClient(app) as c:
        yield c


def _key(dclient, name: str) -> dict[str, str]:
    from sleuth.platform.auth import create_key, create_team

    db = dclient.app.state.platform.db
    team = create_team(db, name)
    return {"Authorization": f"Bearer {create_key(db, team.id).key}"}


@pytest.fixture
def espeak_wav(tmp_path) -> bytes:
    out = tmp_path / "tts.wav"
    text = "The lighthouse keeper counted every ship that passed in the night."
    subprocess.run(["espeak-ng", "-v", "en-us+m4", "-w", str(out), text], check=True, timeout=60)
    return out.read_bytes()


@needs_espeak
def test_detect_traces_a_formant_synthesizer_and_lists_it(dclient, espeak_wav):
    auth = _key(dclient, "trace-a")
    r = dclient.post(
        "/detect",
        headers={**auth, "Prefer": "wait"},
        files={"file": ("tts.wav", espeak_wav, "audio/wav")},
        data={"audio_source_tracing": "true"},
    )
    assert r.status_code == 200, r.text
    item = r.json()["item"]
    assert item["metrics"]["label"] == "fake"
    assert item["audio_source_tracing"] == {"label": "formant", "error_message": None}
    listed = dclient.get("/audio_source_tracings", headers=auth).json()
    assert listed["success"] and listed["total_count"] == 1
    one = listed["items"][0]
    assert one["detect_uuid"] == item["uuid"] and one["results"] == {"label": "formant", "error_message": None}
    got = dclient.get(f"/v2/audio_source_tracings/{one['uuid']}", headers=auth)  # the SDK's alias too
    assert got.status_code == 200 and got.json()["item"] == one
    # another team sees nothing of it
    other = _key(dclient, "trace-b")
    assert dclient.get("/audio_source_tracings", headers=other).json()["total_count"] == 0
    nf = dclient.get(f"/audio_source_tracings/{one['uuid']}", headers=other)
    assert nf.status_code == 404
    body = nf.json()
    assert body["success"] is False and body["item"] is None and body["message"] == "Not found"


@needs_espeak
def test_batch_option_traces_each_audio_file(dclient, espeak_wav):
    auth = _key(dclient, "trace-batch")
    files = [("files[]", ("tts.wav", espeak_wav, "audio/wav")), ("files[]", ("tone.wav", wav_bytes(1.0), "audio/wav"))]
    r = dclient.post(
        "/detect/batch", headers=auth, files=files, data={"audio_source_tracing_enabled": "true", "visualize": "false"}
    )
    assert r.status_code == 202, r.text
    uuid = r.json()["item"]["uuid"]
    deadline = time.time() + 300
    while time.time() < deadline:
        b = dclient.get(f"/detect/batch/{uuid}?include=results", headers=auth).json()["item"]
        if b["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    assert b["completed_count"] == 2, b
    tts, tone = b["items"]
    assert tts["audio_source_tracing"]["label"] == "formant"
    t = tone["audio_source_tracing"]
    assert t["error_message"] is None
    assert t["label"] == ("real" if tone["metrics"]["label"] == "real" else t["label"])
    assert dclient.get("/audio_source_tracings", headers=auth).json()["total_count"] == 2


def test_without_the_option_there_is_no_tracing(dclient):
    auth = _key(dclient, "trace-none")
    r = dclient.post(
        "/detect", headers={**auth, "Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    )
    assert r.status_code == 200 and r.json()["item"]["status"] == "completed", r.text
    assert "audio_source_tracing" not in r.json()["item"]
    assert dclient.get("/audio_source_tracings", headers=auth).json()["items"] == []
    assert dclient.get(f"/audio_source_tracings/{r.json()['item']['uuid']}", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "path, data, field",
    [
        ("/detect", {"audio_source_tracing": "maybe"}, "audio_source_tracing"),
        ("/detect", {"audio_source_tracing_enabled": "true"}, "audio_source_tracing_enabled"),
        ("/detect/batch", {"audio_source_tracing": "true"}, "audio_source_tracing"),
        ("/detect/batch", {"audio_source_tracing_enabled": "2"}, "audio_source_tracing_enabled"),
    ],
)
def test_bad_tracing_options_are_400_naming_the_field(dclient, path, data, field):
    auth = _key(dclient, "trace-bad")
    name = "file" if path == "/detect" else "files[]"
    r = dclient.post(path, headers=auth, data=data, files=[(name, ("a.wav", wav_bytes(0.5), "audio/wav"))])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert dclient.get("/audio_source_tracings?page=0", headers=auth).status_code in (400, 422)
