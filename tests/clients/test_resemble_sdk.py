"""Resemble's Node SDK (``@resemble/node`` 3.5.3) against a live ``sleuth serve``, unchanged but for the base URL.

Every ``detection.*`` call (``secureUpload``, ``create({file})``, ``create({url})``, ``createSync``, ``detectAndGet``,
``get``) for real speech, a face image and a video. Each response is then type-checked by ``tsc`` against the
SDK's own TypeScript declarations (``dist/v2/detection.d.ts``, ``util.d.ts``), with negative controls that must
fail, and its content is checked here.
"""

from __future__ import annotations

import copy
import functools
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from support import cli_key, live_server

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
AUDIO = DATA / "audio" / "real" / "367" / "367-130732-0001.flac"  # 4.4 s of LibriSpeech speech
IMAGE = DATA / "faces" / "df" / "df00204.jpg"
VIDEO = DATA / "video" / "ffpp" / "original" / "004.mp4"  # FaceForensics++ c23, no audio track
pytestmark = [
    pytest.mark.skipif(
        not all(p.is_file() for p in (AUDIO, IMAGE, VIDEO)), reason="../shared/data (audio, faces, video) not present"
    ),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]
DETECT = "WriteResponseV2<Detection>"
READ = "ReadResponseV2<Detection>"
KIND_TYPES = {
    "secureUpload": "SecureUploadResponse",
    "create_file": DETECT,
    "create_url": DETECT,
    "createSync": DETECT,
    "detectAndGet": READ,  # it returns the last get once the detect settled
    "get_file": READ,
    "get_url": READ,
    "get": READ,
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_dir(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def _node(clients: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(clients / "resemble_sdk.mjs")], cwd=clients, env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def sdk_run(node_clients, tmp_path_factory, model_cache):
    tmp = tmp_path_factory.mktemp("sdk")
    media = tmp / "media"
    media.mkdir()
    files = {"AUDIO": media / "speech.flac", "IMAGE": media / "face.jpg", "VIDEO": media / "clip.mp4"}
    for src, dst in zip((AUDIO, IMAGE, VIDEO), files.values(), strict=True):
        shutil.copyfile(src, dst)
    env = {
        **os.environ,
        "SLEUTH_DATA_DIR": str(tmp / "data"),
        "SLEUTH_MODEL_MIRROR": str(DATA / "models"),
        "SLEUTH_MODEL_CACHE": str(model_cache),
        "SLEUTH_WORKERS": "1",
        "SLEUTH_URL_ALLOW_PRIVATE": "127.0.0.1",
    }
    env.pop("SLEUTH_DATABASE_URL", None)
    key = cli_key(env, "sdk")
    srv, media_url = _serve_dir(media)
    try:
        with live_server(env) as url:
            js = {**env, "SLEUTH_KEY": key, "MEDIA_URL": media_url, **{k: str(v) for k, v in files.items()}}
            full = _node(node_clients, {**js, "SLEUTH_BASE": url + "/api/", "SCENARIO": "full"})
            # the other base-URL style: a base without /api/ (the SDK then calls /v2/...)
            short = _node(node_clients, {**js, "SLEUTH_BASE": url, "SCENARIO": "short"})
    finally:
        srv.shutdown()
    return full, short


def _ts_type(name: str) -> str:
    kind, _, call = name.partition(".")
    if kind == "error":
        return "SecureUploadResponse" if call.startswith("secureUpload") else "ErrorResponseV2"
    return KIND_TYPES[call]


def _type_check(
    clients: Path,
    folder: Path,
    checks: list[tuple[str, Any]],
    must_fail: list[tuple[str, Any]],
    strict_nulls: bool = False,
) -> str:
    dist = (clients / "node_modules" / "@resemble" / "node" / "dist" / "v2").as_posix()
    lines = [
        "import type { Detection, DetectionMetrics, ImageMetrics, SecureUploadResponse, VideoMetrics }"
        f" from '{dist}/detection';",
        f"import type {{ ErrorResponseV2, ReadResponseV2, WriteResponseV2 }} from '{dist}/util';",
        # U is inferred from the literal, then must be assignable to T: the declared fields with the declared
        # types are required, while fields the SDK does not declare (sleuth's extras) are allowed
        "const ok = <T,>() => <U extends T>(x: U): U => x;",
    ]
    for ts_type, value in checks:
        lines.append(f"ok<{ts_type}>()({json.dumps(value)});")
    for ts_type, value in must_fail:
        lines.append("// @ts-expect-error negative control: this body must not type-check")
        lines.append(f"ok<{ts_type}>()({json.dumps(value)});")
    src = folder / ("check_strict.ts" if strict_nulls else "check.ts")
    src.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "node",
            str(clients / "node_modules" / "typescript" / "bin" / "tsc"),
            "--noEmit",
            "--strict",
            # whole answers: sleuth answers null for a value it does not have (the image_metrics of an audio
            # file, a heatmap without visualize); the SDK declares those optional or plain strings, so nulls are
            # allowed there and every non-null value must match. The parts each media type must fill are
            # checked again with strict null checks.
            "--strictNullChecks",
            "true" if strict_nulls else "false",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--target",
            "es2022",
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout + out.stderr if out.returncode else ""


def test_every_response_has_the_types_the_sdk_declares(sdk_run, node_clients, tmp_path):
    full, short = sdk_run
    checks = [(_ts_type(n), v) for n, v in [*full.items(), *short.items()]]
    # negative controls: the checker must catch what Resemble's docs print but its SDK does not declare
    wrong_scores = copy.deepcopy(full["audio.get_file"])
    wrong_scores["item"]["metrics"]["score"] = [str(s) for s in wrong_scores["item"]["metrics"]["score"]]
    no_treeview = copy.deepcopy(full["video.get_file"])
    del no_treeview["item"]["video_metrics"]["treeview"]
    number_duration = copy.deepcopy(full["video.get_file"])
    number_duration["item"]["duration"] = float(number_duration["item"]["duration"])
    numeric_image_score = copy.deepcopy(full["image.get_file"])
    numeric_image_score["item"]["image_metrics"]["score"] = 0.5
    errors = _type_check(
        node_clients,
        tmp_path,
        checks,
        [(READ, wrong_scores), (READ, no_treeview), (READ, number_duration), (READ, numeric_image_score)],
    )
    assert not errors, errors


def test_each_media_types_metrics_are_complete_without_nulls(sdk_run, node_clients, tmp_path):
    """With ``visualize``, the part each media type fills has every declared field, non-null, of its type."""
    full, _short = sdk_run
    parts = {"audio": ("metrics", "DetectionMetrics"), "image": ("image_metrics", "ImageMetrics")}
    parts["video"] = ("video_metrics", "VideoMetrics")
    checks = []
    for kind, (field, ts_type) in parts.items():
        for how in ("createSync", "detectAndGet", "get_file", "get_url"):
            checks.append((ts_type, full[f"{kind}.{how}"]["item"][field]))
    no_image = copy.deepcopy(full["image.get_file"]["item"]["image_metrics"])
    no_image["image"] = None
    errors = _type_check(node_clients, tmp_path, checks, [("ImageMetrics", no_image)], strict_nulls=True)
    assert not errors, errors


def _completed(res: dict[str, Any], media_type: str) -> dict[str, Any]:
    assert res["success"] is True, res
    item: dict[str, Any] = res["item"]
    assert item["status"] == "completed" and item["media_type"] == media_type, item
    return item


def test_secure_upload_and_every_create_flavour(sdk_run):
    full, _short = sdk_run
    for kind in ("audio", "image", "video"):
        up = full[f"{kind}.secureUpload"]
        assert up["success"] is True and isinstance(up["token"], str) and up["media_type"] == kind
        for how in ("create_file", "create_url"):
            created = full[f"{kind}.{how}"]
            assert created["success"] is True and created["item"]["status"] in ("processing", "completed"), created
            got = _completed(full[f"{kind}.get_{how[7:]}"], kind)
            assert got["uuid"] == created["item"]["uuid"]
        for how in ("createSync", "detectAndGet"):
            _completed(full[f"{kind}.{how}"], kind)
    names = {full[f"{k}.get_url"]["item"]["filename"] for k in ("audio", "image", "video")}
    assert names == {"speech.flac", "face.jpg", "clip.mp4"}  # create({url}) fetched them by URL


def test_the_fields_the_sdk_types_declare_are_filled(sdk_run):
    full, _short = sdk_run
    audio = _completed(full["audio.createSync"], "audio")
    m = audio["metrics"]
    assert m["label"] in ("fake", "real") and isinstance(m["certainty"], str) and 0 <= float(m["certainty"]) <= 1
    scores = m["score"]  # per 2 s chunk of 4.4 s
    assert len(scores) >= 2 and all(type(s) in (int, float) and 0 <= s <= 1 for s in scores)
    assert isinstance(m["aggregated_score"], str)
    assert float(m["aggregated_score"]) == pytest.approx(sum(scores) / len(scores), abs=0.006)
    assert float(audio["duration"]) == pytest.approx(4.38, abs=0.01)

    image = _completed(full["image.createSync"], "image")
    im = image["image_metrics"]
    assert im["type"] == "facial" and im["label"] in ("fake", "real") and 0 <= float(im["score"]) <= 1
    assert im["children"] and all(isinstance(c["description"], str) and c["description"] for c in im["children"])
    assert image["metrics"] == {}

    video = _completed(full["video.createSync"], "video")
    vm = video["video_metrics"]
    assert vm["label"] in ("Fake", "Real") and vm["posterior"] == vm["score"]
    from sleuth.pipelines.verdict import calibrate
    from sleuth.services.thresholds import threshold

    # certainty: the calibrated score's distance to the face threshold (docs/api.md)
    cal = calibrate(float(vm["score"]), threshold("faces", "mesonet").value)
    assert float(vm["certainty"]) == pytest.approx(abs(cal - 0.5) * 2, abs=1e-5)
    assert float(video["verdict"]["parts"]["faces"]["certainty"]) == pytest.approx(float(vm["certainty"]), abs=1e-5)
    assert [w["type"] for w in vm["children"]] == ["VideoResult", "VideoResult"]  # 2 s in 1 s windows
    tree = vm["treeview"].splitlines()
    assert tree[0].startswith("video: ") and len(tree) == 1 + 2 + 4 + sum(
        len(f["children"]) for w in vm["children"] for f in w["children"]
    )  # the video, 2 windows, 4 frames (2 fps), one line per face
    assert float(video["duration"]) > 2  # the clip's length, not only the analysed 2 s


def _verdict(item: dict[str, Any], field: str) -> dict[str, Any]:
    part = dict(item[field])
    # each detect has its own (a signed link: the path names the detect)
    assert urlsplit(part.pop("image")).path.endswith(f"/detect/{item['uuid']}/visualization")
    return part


def test_the_same_file_gets_the_same_verdict_through_every_intake(sdk_run):
    full, short = sdk_run
    keys = {"audio": "metrics", "image": "image_metrics", "video": "video_metrics"}
    for kind, field in keys.items():
        results = [
            _verdict(full[f"{kind}.{how}"]["item"], field)
            for how in ("createSync", "detectAndGet", "get_file", "get_url")
        ]
        assert all(r == results[0] for r in results), kind
    assert _verdict(short["audio.createSync"]["item"], "metrics") == _verdict(
        full["audio.createSync"]["item"], "metrics"
    )


def test_bare_base_url_and_errors(sdk_run):
    full, short = sdk_run
    assert short["audio.secureUpload"]["success"] is True
    assert _completed(short["audio.get"], "audio")["uuid"] == short["audio.createSync"]["item"]["uuid"]
    unknown = full["error.get_unknown"]
    assert unknown["success"] is False and unknown["item"] is None and unknown["message"]
    bad = full["error.get_bad_key"]
    assert bad["success"] is False and bad["error"]["code"] == "invalid_api_key"
    assert full["error.secureUpload_bad_key"] == {"success": False, "message": "Secure upload failed with status 401"}
