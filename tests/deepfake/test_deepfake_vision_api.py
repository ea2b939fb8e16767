"""Images and video through the deepfake API: real MTCNN + MesoNet, visualizations, hostile media."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import detect_wait, wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
pytestmark = [
    pytest.mark.skipif(not (DATA / "faces").is_dir(), reason="../shared/data (faces, videos) not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


@pytest.fixture
def vclient(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team

    app = create_app(settings.model_copy(update={"workers": 0}))
    db = app.state.platform.db
    auth = {"Authorization": f"Bearer {create_key(db, create_team(db, 'vision').id).key}"}
    with TestClient(app) as c:
        yield c, auth


def test_face_image_gets_image_metrics_and_heatmap(vclient):
    c, auth = vclient
    item = detect_wait(c, auth, "df00204.jpg", (DATA / "faces" / "df" / "df00204.jpg").read_bytes(), visualize="true")
    assert item["status"] == "completed" and item["media_type"] == "image"
    im = item["image_metrics"]
    assert im["type"] == "facial" and im["label"] in ("fake", "real") and 0 <= float(im["score"]) <= 1
    assert len(im["children"]) >= 1 and len(im["children"][0]["box"]) == 4
    # a signed link (the web app's browsers open it without the key); the path names this detect
    assert urlsplit(im["image"]).path.endswith(f"/detect/{item['uuid']}/visualization")
    png = c.get(f"/detect/{item['uuid']}/visualization", headers=auth)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_image_without_face_is_not_called_real(vclient):
    from PIL import Image

    c, auth = vclient
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))).convert("RGB").save(buf, "PNG")
    item = detect_wait(c, auth, "gradient.png", buf.getvalue())
    im = item["image_metrics"]
    assert im["label"] != "real" and im["score"] is None and "no face" in im["description"]


def test_video_gets_video_metrics_tree_and_timeline(vclient):
    c, auth = vclient
    clip = (DATA / "video" / "ffpp" / "original" / "004.mp4").read_bytes()
    item = detect_wait(c, auth, "004.mp4", clip, frame_length="2", max_video_secs="4", visualize="true")
    assert item["status"] == "completed" and item["media_type"] == "video"
    vm = item["video_metrics"]
    assert vm["label"] in ("Fake", "Real") and 0 <= float(vm["certainty"]) <= 1
    windows = vm["children"]
    assert [w["type"] for w in windows] == ["VideoResult", "VideoResult"]  # 4 s in 2 s windows
    frames = [f for w in windows for f in w["children"]]
    assert len(frames) == 8 and all(f["type"] == "ImageResult" for f in frames)  # 2 fps x 4 s
    targets = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]  # 2 fps; the first frame at/after each (25 fps clip)
    assert all(0 <= f["timestamp"] - t < 1 / 25 + 1e-6 for f, t in zip(frames, targets, strict=True))
    assert any(seg["type"] == "Segment" for f in frames for seg in f["children"])
    assert item["metrics"] == {}  # this clip has no audio track
    assert c.get(f"/detect/{item['uuid']}/visualization", headers=auth).content.startswith(b"\x89PNG")


def test_video_with_audio_track_gets_audio_metrics(vclient, tmp_path):
    import av

    path = tmp_path / "talk.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        aus = out.add_stream("aac", rate=16000)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 8, np.uint8), format="rgb24")
            for p in vs.encode(frame):
                out.mux(p)
        pcm = np.frombuffer(wav_bytes(3.0)[44:], dtype="<i2").reshape(1, -1)
        af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        af.sample_rate = 16000
        for p in aus.encode(af):
            out.mux(p)
        for stream in (vs, aus):
            for p in stream.encode(None):
                out.mux(p)
    c, auth = vclient
    item = detect_wait(c, auth, "talk.mp4", path.read_bytes(), frame_length="1")
    assert item["status"] == "completed"
    assert item["metrics"] is not None and len(item["metrics"]["score"]) >= 2
    assert item["video_metrics"]["label"] == "unknown"  # no face in a flat grey video


@pytest.mark.parametrize(
    "name, data",
    [
        (
            "truncated.mp4",
            (DATA / "video" / "ffpp" / "original" / "004.mp4").read_bytes()[:5000]
            if (DATA / "video").is_dir()
            else b"",
        ),
        ("garbage.mov", b"\x00\x00\x00\x18ftypqt  " + b"\x13" * 4000),
        ("audio_only.mp4", b""),
    ],
)
def test_hostile_video_fails_item_with_reason(vclient, tmp_path, name, data):
    c, auth = vclient
    if name == "audio_only.mp4":
        import av

        p = tmp_path / name
        with av.open(str(p), "w") as out:
            s = out.add_stream("aac", rate=16000)
            af = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.int16), format="s16", layout="mono")
            af.sample_rate = 16000
            for pkt in [*s.encode(af), *s.encode(None)]:
                out.mux(pkt)
        data = p.read_bytes()
    item = detect_wait(c, auth, name, data)
    assert item["status"] == "failed" and item["error_message"]


def test_zero_retention_keeps_no_image_heatmap(vclient):
    c, auth = vclient
    face = (DATA / "faces" / "real" / sorted(p.name for p in (DATA / "faces" / "real").iterdir())[0]).read_bytes()
    item = detect_wait(c, auth, "face.jpg", face, visualize="true", zero_retention_mode="true")
    assert item["status"] == "completed" and item["file_deleted_at"]
    assert item["image_metrics"]["image"] is None and "zero retention" in item["notes"][0]
    storage = c.app.state.platform.storage
    assert list(storage.iterate("")) == []  # neither the media nor a picture derived from it
