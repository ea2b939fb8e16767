"""Animal Detect-compatible wildlife API on the real models and the shared camera-trap images."""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
pytestmark = [
    pytest.mark.skipif(not CT.is_dir(), reason="../shared/data (camera-trap images, model mirror) not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


def manifest() -> list[dict]:
    return json.loads((CT / "manifest.json").read_text())["images"]


def img(path: str) -> bytes:
    return (CT / path).read_bytes()


@pytest.fixture(scope="module")
def wclient(tmp_path_factory):
    """One app for the module (models load once); a fresh SQLite DB of its own."""
    import os

    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.settings import Settings

    cache = Path(os.environ.get("SLEUTH_MODEL_CACHE") or tmp_path_factory.mktemp("mc"))
    s = Settings(
        data_dir=tmp_path_factory.mktemp("wdata"),
        workers=0,
        model_cache=cache,
        model_mirror=DATA / "models",
        url_allow_private="127.0.0.1",
        rate_limit_enabled=False,
    )
    os.environ.setdefault("SLEUTH_MODEL_MIRROR", str(DATA / "models"))
    os.environ.setdefault("SLEUTH_MODEL_CACHE", str(cache))
    app = create_app(s)
    with TestClient(app) as c:
        yield c


def _key(client, name):
    from sleuth.platform.auth import create_key, create_team

    db = client.app.state.platform.db
    team = create_team(db, name)
    return team.id, {"Authorization": f"Bearer {create_key(db, team.id).key}"}


@pytest.fixture(scope="module")
def auth(wclient):
    return _key(wclient, "wild")[1]


BATCH = [
    "speciesnet/blank.jpg",
    "speciesnet/human.jpg",
    "speciesnet/vehicle.jpg",
    "speciesnet/ocelot.jpg",
    "animl_southwest/error_img.JPG",
    "speciesnet/american_black_bear.jpg",
]


@pytest.fixture(scope="module")
def coarse(wclient, auth):
    files = [("images", (p.split("/")[-1], img(p), "image/jpeg")) for p in BATCH]
    r = wclient.post("/v1/batch-detect", headers=auth, files=files, data={"classify": "false", "metadata": "true"})
    assert r.status_code == 200, r.text
    return r.json()


def test_batch_shape_and_per_item_failure(coarse):
    assert set(coarse) >= {"id", "expires_at", "results", "info"}
    res = coarse["results"]
    assert [r["index"] for r in res] == list(range(len(BATCH)))
    assert [r["filename"] for r in res] == [p.split("/")[-1] for p in BATCH]
    bad = res[4]
    assert bad["status"] == "failed" and "empty" in bad["error"]["message"] and bad["annotations"] == []
    for r in res:
        assert set(r["info"]) == {"processing_time_ms", "model_version", "model_id", "threshold_applied"}
        for a in r["annotations"]:
            x, y, w, h = a["bbox"]
            assert 0 <= w <= 1 and 0 <= h <= 1 and a["score"] >= 0.2
            assert set(a["taxonomy"]) == {"id", "class", "order", "family", "genus", "species"}
    info = coarse["info"]
    assert info["total_processed"] == 5 and info["threshold_applied"] == 0.2 and info["model_id"] == "mdlite-coral"
    assert "total_time_ms" in info and "country_processed" in info


def test_coarse_labels_blank_human_vehicle_animal(coarse):
    by = {r["filename"]: r for r in coarse["results"]}
    assert by["blank.jpg"]["annotations"] == []
    assert {a["label"] for a in by["human.jpg"]["annotations"]} == {"human"}
    assert "vehicle" in {a["label"] for a in by["vehicle.jpg"]["annotations"]}
    assert {a["label"] for a in by["american_black_bear.jpg"]["annotations"]} == {"animal"}
    assert {a["label"] for a in by["ocelot.jpg"]["annotations"]} == {"animal"}


def test_metadata_only_present_fields(coarse):
    by = {r["filename"]: r for r in coarse["results"]}
    md = by["blank.jpg"]["metadata"]
    assert (md["image_width"], md["image_height"], md["file_size"]) == (2048, 1536, 409295)
    assert md["make"] == "RECONYX" and md["datetime_original"].startswith("2016:09:25")
    assert "gps" not in md
    assert by["error_img.JPG"]["metadata"] == {"file_size": 0}


def test_stored_result_reload_isolation_and_expiry(wclient, auth, coarse):
    rid = coarse["id"]
    got = wclient.get(f"/v1/detect/{rid}", headers=auth).json()
    assert got["results"] == coarse["results"] and got["status"] == "success"
    assert got["endpoint"] == "/v1/batch-detect" and got["created_at"] and got["completed_at"]
    _, other = _key(wclient, "wild-other")
    assert wclient.get(f"/v1/detect/{rid}", headers=other).status_code == 404
    assert wclient.get("/v1/detect/not-a-uuid", headers=auth).status_code == 400
    from sqlalchemy import update

    from sleuth.db.models import StoredResult, utcnow

    with wclient.app.state.platform.db.session() as s:
        s.execute(update(StoredResult).where(StoredResult.id == rid).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert wclient.get(f"/v1/detect/{rid}", headers=auth).status_code == 404


def test_multipart_and_base64_give_identical_results(wclient, auth):
    paths = ["speciesnet/domestic_dog.jpg", "speciesnet/vehicle.jpg"]
    params = {"threshold": "0.3", "top_candidate": "3"}
    mp = wclient.post(
        "/v1/batch-detect",
        headers=auth,
        data=params,
        files=[("images", (Path(p).name, img(p), "image/jpeg")) for p in paths],
    ).json()
    body = {
        "images": [{"filename": Path(p).name, "data": base64.b64encode(img(p)).decode()} for p in paths],
        "threshold": 0.3,
        "top_candidate": 3,
    }
    js = wclient.post("/v1/batch-detect", headers=auth, json=body).json()
    strip = [{k: v for k, v in r.items() if k != "info"} for r in mp["results"]]
    assert strip == [{k: v for k, v in r.items() if k != "info"} for r in js["results"]]
    dog = mp["results"][0]["annotations"]
    # 3 asked, 3 given with the stand-in too (its classes may name one taxon several times: one candidate each)
    assert dog and all(len(a["top_candidates"]) == 3 for a in dog if a["label"] not in ("human", "vehicle"))
    plain = wclient.post(
        "/v1/batch-detect", headers=auth, json={"images": [base64.b64encode(img(paths[0])).decode()]}
    ).json()
    assert plain["results"][0]["filename"] == "image_0"


def test_single_detect_shape_and_errors(wclient, auth):
    r = wclient.post(
        "/v1/detect",
        headers=auth,
        files={"image": ("bear.jpg", img("speciesnet/american_black_bear.jpg"))},
        data={"country": "usa", "latitude": "44.4", "longitude": "-110.6"},
    )
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) >= {"id", "expires_at", "annotations", "info"} and "results" not in j
    assert j["info"]["country_processed"] == "USA" and j["info"]["admin1_processed"].startswith("US-")
    assert j["annotations"]
    r = wclient.post("/v1/detect", headers=auth, files={"image": ("x.jpg", b"")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image"


@pytest.mark.parametrize(
    "data, field",
    [
        ({"threshold": "0"}, "threshold"),
        ({"threshold": "0.995"}, "threshold"),
        ({"threshold": "abc"}, "threshold"),
        ({"country": "Atlantis"}, "country"),
        ({"country": "USA", "latitude": "10"}, "longitude"),
        ({"latitude": "10", "longitude": "10"}, "country"),
        ({"top_candidate": "11"}, "top_candidate"),
        ({"top_candidate": "2", "classify": "false"}, "top_candidate"),
        ({"classify": "perhaps"}, "classify"),
        ({"country": "USA", "latitude": "100", "longitude": "0"}, "latitude"),
    ],
)
def test_parameter_validation(wclient, auth, data, field):
    r = wclient.post(
        "/v1/batch-detect", headers=auth, data=data, files=[("images", ("a.jpg", img("speciesnet/blank.jpg")))]
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_country_forms_accepted(wclient, auth):
    for value in ("US", "usa", "United States", "united states of america"):
        r = wclient.post(
            "/v1/batch-filter",
            headers=auth,
            data={"country": value},
            files=[("images", ("a.jpg", img("speciesnet/blank.jpg")))],
        )
        assert r.status_code == 200 and r.json()["info"]["country_processed"] == "USA"


def test_limits(wclient, auth):
    small = img("speciesnet/blank.jpg")
    r = wclient.post("/v1/batch-detect", headers=auth, files=[("images", (f"{i}.jpg", small)) for i in range(11)])
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"
    r = wclient.post("/v1/batch-detect", headers=auth, data={"threshold": "0.2"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_image"
    big = img("speciesnet/human.jpg")  # ~2 MB: 6 of them pass the 20 MB body limit, not the 10 MB raw budget
    r = wclient.post("/v1/batch-detect", headers=auth, files=[("images", (f"{i}.jpg", big)) for i in range(6)])
    assert r.status_code == 413 and "budget" in r.json()["message"]
    r = wclient.post(
        "/v1/batch-detect",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=x"},
        content=b"x" * 21_000_000,
    )
    assert r.status_code == 413


def test_filter_endpoints_carry_detections(wclient, auth):
    r = wclient.post(
        "/v1/batch-filter",
        headers=auth,
        files=[("images", ("h.jpg", img("speciesnet/human.jpg"))), ("images", ("b.jpg", img("speciesnet/blank.jpg")))],
    )
    res = r.json()["results"]
    assert "annotations" not in res[0] and res[0]["detections"]
    assert {d["label"] for d in res[0]["detections"]} == {"human"} and res[1]["detections"] == []
    assert r.json()["info"]["model_id"] == "mdlite-filter"
    u = wclient.post(
        "/v1/batch-filter-urban", headers=auth, files=[("images", ("v.jpg", img("speciesnet/vehicle.jpg")))]
    )
    assert "vehicle" in {d["label"] for d in u.json()["results"][0]["detections"]}
    assert u.json()["info"]["model_id"] == "yolox-nano-filter"
    d = wclient.post("/v1/detect-urban", headers=auth, files={"image": ("v.jpg", img("speciesnet/vehicle.jpg"))})
    assert d.status_code == 200 and d.json()["info"]["model_id"] == "yolox-nano-coral"
    bu = wclient.post(
        "/v1/batch-detect-urban", headers=auth, files=[("images", ("v.jpg", img("speciesnet/vehicle.jpg")))]
    )
    assert bu.status_code == 200 and bu.json()["results"][0]["annotations"]


def test_recall_on_shared_set(wclient, auth):
    """Animals found where the reference has them (IoU >= 0.5 with reference boxes of conf >= 0.5)."""
    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

    recs = [m for m in manifest() if m["kind"] == "animal" and m.get("boxes") and m["bytes"] < 2_500_000]
    hit = total = 0
    for i in range(0, len(recs), 4):
        chunk = recs[i : i + 4]
        r = wclient.post(
            "/v1/batch-detect",
            headers=auth,
            data={"classify": "false", "threshold": "0.1"},
            files=[("images", (Path(m["path"]).name, img(m["path"]))) for m in chunk],
        )
        for m, res in zip(chunk, r.json()["results"], strict=True):
            refs = [b["bbox"] for b in m["boxes"] if (b.get("conf") or 1.0) >= 0.5]
            if not refs:
                continue
            preds = [a["bbox"] for a in res["annotations"]]
            total += len(refs)
            if preds:
                iou = iou_matrix(norm_xywh_to_xyxy(refs), norm_xywh_to_xyxy(preds))
                hit += int((iou.max(axis=1) >= 0.5).sum())
    recall = hit / total
    print(f"recall@IoU0.5 over {total} reference boxes: {recall:.3f}")
    assert recall >= 0.6


class _ImageServer(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
            return
        data = img("speciesnet/vehicle.jpg")
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_detect_url_and_ssrf(wclient, auth):
    srv = HTTPServer(("127.0.0.1", 0), _ImageServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ok = wclient.post(
            "/v1/detect-url", headers=auth, json={"url": f"http://127.0.0.1:{srv.server_port}/v.jpg", "classify": False}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["info"]["source_url"].endswith("/v.jpg") and ok.json()["annotations"]
        red = wclient.post("/v1/detect-url", headers=auth, json={"url": f"http://127.0.0.1:{srv.server_port}/redirect"})
        assert red.status_code == 400 and red.json()["error"]["code"] == "blocked_url"
    finally:
        srv.shutdown()
    for url in (
        "http://10.1.2.3/x.jpg",
        "http://[::1]/x.jpg",
        "http://localhost:9/x.jpg",
        "file:///etc/passwd",
        "http://169.254.169.254/latest",
        "http://metadata.google.internal/",
    ):
        r = wclient.post("/v1/detect-url", headers=auth, json={"url": url})
        assert r.status_code == 400 and r.json()["error"]["code"] == "blocked_url", url


def test_reference_endpoints(wclient, auth):
    r = wclient.get("/v1/countries/USA/species?limit=5", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_range_data"
    assert "no species range data" in r.json()["message"]
    r = wclient.get("/v1/countries/XXX/species", headers=auth)
    assert r.status_code == 404 and r.json()["message"] == "Country code not supported"
    assert wclient.get("/v1/countries/USA/species?limit=101", headers=auth).status_code == 400
    models = wclient.get("/v1/models", headers=auth).json()["models"]
    assert {m["model_id"] for m in models} >= {"mdlite-coral", "yolox-nano-coral", "mdlite-filter"}
    md = {m["model_id"]: m for m in models}
    assert md["mdlite-coral"]["model_version"] == "mdlite-2022.05.28-int8+coral-mobilenetv2"
    assert (
        md["mdlite-filter"]["detector"] == "mdlite" and md["mdlite-filter"]["model_version"] == "mdlite-2022.05.28-int8"
    )


def test_detector_precision_setting_picks_the_fp32_graph(monkeypatch):
    from sleuth.services import wildlife as svc
    from sleuth.settings import get_settings

    monkeypatch.setenv("SLEUTH_DETECTOR_PRECISION", "fp32")
    get_settings.cache_clear()
    try:
        p = svc.resolve_profile("default")
        f = svc.resolve_profile("default", detector_only=True)
        u = svc.resolve_profile("urban")
    finally:
        monkeypatch.delenv("SLEUTH_DETECTOR_PRECISION")
        get_settings.cache_clear()
    assert (p.detector, p.model_version) == ("mdlite-fp32", "mdlite-2022.05.28+coral-mobilenetv2")
    assert (f.detector, f.model_version) == ("mdlite-fp32", "mdlite-2022.05.28")
    assert u == svc.PROFILES["urban"]  # no MD-Lite in it
    assert svc.resolve_profile("default").detector == "mdlite"
    with pytest.raises(ValueError, match="int8 or fp32"):
        svc.with_precision(svc.PROFILES["default"], "fp16")


def test_billing_one_credit_per_successful_image(wclient):
    from sleuth.platform import credits

    p = wclient.app.state.platform
    old = p.settings.billing_enabled
    p.settings.billing_enabled = True
    p.db.settings.billing_enabled = True
    try:
        team_id, auth = _key(wclient, "wild-payer")
        credits.grant(p.db, team_id, 3)
        files = [
            ("images", ("a.jpg", img("speciesnet/blank.jpg"))),
            ("images", ("bad.jpg", b"")),
            ("images", ("c.jpg", img("speciesnet/vehicle.jpg"))),
        ]
        r = wclient.post("/v1/batch-filter", headers=auth, files=files)
        assert r.status_code == 200
        assert credits.balance(p.db, team_id).available == 1  # 2 charged, the bad one refunded
        r = wclient.post("/v1/batch-filter", headers=auth, files=files)
        assert r.status_code == 402 and r.json()["error"]["required"] == 3
    finally:
        p.settings.billing_enabled = old
        p.db.settings.billing_enabled = old
