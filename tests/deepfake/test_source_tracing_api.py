"""Audio source tracing end to end: detect and batch options, the item field, the /audio_source_tracings routes."""

from __future__ import annotations

import importlib.util
import sys
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


def test_without_the_option_there_is_no_tracing(dclient):
    auth = _key(dclient, "trace-none")
    r = dclient.post(
        "/detect", headers={**auth, "Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    )
    assert r.status_code == 200 and "audio_source_tracing" not in r.json()["item"]
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
