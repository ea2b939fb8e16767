"""Reviews (POST/GET /v1/reviews) and exports (GET /v1/exports) over a team's stored results: every format carries
the reviews, Camtrap DP validates, teams stay apart, bad input gets a clear 400."""

from __future__ import annotations

import csv
import io
import json

from webapp_support import new_batch, store, unzip

from validators import md_validate, validate_camtrap_dp

FOX = "81735c85-2c43-502d-9e0c-6fd6c624fd55;mammalia;carnivora;canidae;vulpes;vulpes;red fox"


def _review(client, auth, **body):
    return client.post("/v1/reviews", headers=auth, json=body)


def test_review_actions_replay_in_order(client, team_key, app):
    team, auth = team_key
    rid = new_batch(app.state.platform.db, team)
    state = client.get(f"/v1/reviews?result_id={rid}", headers=auth).json()
    assert [len(i["boxes"]) for i in state["images"]] == [2, 0, 0]
    assert all(not i["reviewed"] for i in state["images"])

    r = _review(client, auth, result_id=rid, index=0, action="correct", box=0, label="Red Fox", reviewer="Ada")
    assert r.status_code == 201, r.text
    img = r.json()["image"]
    box = img["boxes"][0]
    assert (box["status"], box["label"], box["label_string"]) == ("corrected", "red fox", FOX)
    assert box["machine_label"] == "german shepherd" and box["reviewer"] == "Ada" and box["score"] == 0.785156
    assert r.json()["review"]["reviewer"] == "Ada"

    assert _review(client, auth, result_id=rid, index=0, action="reject", box=1).status_code == 201
    added = _review(client, auth, result_id=rid, index=0, action="add", bbox=[0.05, 0.5, 0.2, 0.3], label="person")
    assert added.status_code == 201, added.text
    boxes = added.json()["image"]["boxes"]
    assert [b["status"] for b in boxes] == ["corrected", "rejected", "added"]
    assert boxes[2]["category"] == "person" and boxes[2]["origin"] == "added" and boxes[2]["score"] is None
    # the key has no name: its prefix is the reviewer
    assert boxes[2]["reviewer"].startswith("sk_sleuth_")

    blank = _review(client, auth, result_id=rid, index=1, action="blank", reviewer="Ada")
    assert blank.status_code == 201 and blank.json()["image"]["blank"] is True
    # a later box action un-blanks; confirming a rejected box brings it back
    assert (
        _review(client, auth, result_id=rid, index=0, action="confirm", box=1).json()["image"]["boxes"][1]["status"]
        == "confirmed"
    )
    full = client.get(f"/v1/reviews?result_id={rid}&index=0", headers=auth).json()["images"][0]
    assert [h["action"] for h in full["history"]] == ["correct", "reject", "add", "confirm"]
    assert full["reviewed"] and full["reviewer"]


def test_review_input_errors_name_the_field(client, team_key, other_team_key, app):
    team, auth = team_key
    rid = new_batch(app.state.platform.db, team)
    cases = [
        ({"index": 0, "action": "confirm", "box": 0}, "result_id"),
        ({"result_id": rid, "action": "approve"}, "action"),
        ({"result_id": rid, "index": 7, "action": "blank"}, "index"),
        ({"result_id": rid, "index": 0, "action": "confirm", "box": 5}, "box"),
        ({"result_id": rid, "index": 0, "action": "confirm"}, "box"),
        ({"result_id": rid, "index": 0, "action": "correct", "box": 0}, "label"),
        ({"result_id": rid, "index": 0, "action": "correct", "box": 0, "label": "   "}, "label"),
        ({"result_id": rid, "index": 0, "action": "add", "bbox": [0.9, 0.9, 0.5, 0.5]}, "bbox"),
        ({"result_id": rid, "index": 0, "action": "add", "bbox": [0.1, 0.1]}, "bbox"),
        ({"result_id": rid, "index": 0, "action": "blank", "box": 1}, "box"),
        ({"result_id": rid, "index": 0, "action": "confirm", "box": 0, "label": "x"}, "label"),
        ({"result_id": rid, "index": 0, "action": "add", "bbox": [0.1, 0.1, 0.1, 0.1], "category": "tree"}, "category"),
    ]
    for body, field in cases:
        r = _review(client, auth, **body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    assert client.post("/v1/reviews", headers=auth, content=b"[1]").status_code == 400
    # another team's result: 404, like a missing one; no key: 401
    _other, other_auth = other_team_key
    assert _review(client, other_auth, result_id=rid, action="blank").status_code == 404
    assert client.get(f"/v1/reviews?result_id={rid}", headers=other_auth).status_code == 404
    assert client.post("/v1/reviews", json={"result_id": rid, "action": "blank"}).status_code == 401


def _export(client, auth, **params):
    return client.get("/v1/exports", headers=auth, params=params)


def test_every_export_format_carries_the_reviews(client, team_key, app, tmp_path):
    team, auth = team_key
    rid = new_batch(app.state.platform.db, team)
    _review(client, auth, result_id=rid, index=0, action="correct", box=0, label="red fox", reviewer="Ada")
    _review(client, auth, result_id=rid, index=0, action="add", bbox=[0.05, 0.5, 0.2, 0.3], reviewer="Ada")
    _review(client, auth, result_id=rid, index=1, action="blank", reviewer="Bo")

    md = _export(client, auth, format="md", ids=rid)
    assert md.status_code == 200, md.text
    assert md.headers["content-type"].startswith("application/json")
    assert 'filename="sleuth-md-' in md.headers["content-disposition"]
    assert md.headers["x-sleuth-images"] == "3"
    doc = md.json()
    assert md_validate(doc)["errors"] == []
    dog = next(i for i in doc["images"] if i["file"] == "domestic_dog.jpg")
    d0 = dog["detections"][0]
    assert d0["review"]["status"] == "corrected" and d0["review"]["reviewer"] == "Ada"
    assert doc["classification_categories"][d0["classifications"][0][0]] == "red fox"
    assert d0["classifications"][0][1] == 1.0
    assert d0["review"]["machine_label"].endswith("german shepherd")
    assert [d.get("review", {}).get("status") for d in dog["detections"]] == ["corrected", None, "added"]
    blank = next(i for i in doc["images"] if i["file"] == "blank.jpg")
    assert blank["review"]["status"] == "blank" and blank["detections"] == []
    assert next(i for i in doc["images"] if i["file"] == "broken.jpg")["failure"]

    coco = _export(client, auth, format="coco", ids=rid).json()
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    reviewed = [a for a in coco["annotations"] if a.get("review")]
    assert {cats[a["category_id"]] for a in reviewed} == {"red fox", "animal"}
    assert next(i for i in coco["images"] if i["id"] == "blank.jpg")["review"]["status"] == "blank"

    rows = list(csv.DictReader(io.StringIO(_export(client, auth, format="csv", ids=rid, threshold=0.5).text)))
    by = [(r["file"], r["category"], r["label"], r["review_status"], r["reviewer"]) for r in rows]
    # the faint machine box (0.12) is under the 0.5 threshold; the reviewed and added boxes stay
    assert ("domestic_dog.jpg", "animal", "red fox", "corrected", "Ada") in by
    assert ("domestic_dog.jpg", "animal", "animal", "added", "Ada") in by
    assert ("blank.jpg", "blank", "", "blank", "Bo") in by
    assert len([r for r in rows if r["file"] == "domestic_dog.jpg"]) == 2

    z = _export(client, auth, format="camtrap-dp", ids=rid, deployment_id="pole-7", latitude=-1.4, longitude=35.0)
    assert z.status_code == 200, z.text
    assert z.headers["content-type"] == "application/zip"
    pkg = unzip(z.content, tmp_path / "dp")
    assert validate_camtrap_dp(pkg) == []
    obs = list(csv.DictReader((pkg / "observations.csv").open()))
    human = [o for o in obs if o["classificationMethod"] == "human"]
    assert {(o["observationType"], o["scientificName"], o["classifiedBy"]) for o in human} == {
        ("animal", "Vulpes vulpes", "Ada"),
        ("animal", "", "Ada"),
        ("blank", "", "Bo"),
    }
    assert all(o["classificationProbability"] == "" for o in human)
    assert all(o["classificationTimestamp"] for o in human)
    machine = [o for o in obs if o["classificationMethod"] == "machine"]
    assert len(machine) == 1 and machine[0]["classificationProbability"] == "0.12"  # the faint box, unreviewed
    deps = list(csv.DictReader((pkg / "deployments.csv").open()))
    assert [(d["deploymentID"], d["latitude"], d["longitude"]) for d in deps] == [("pole-7", "-1.4", "35")]

    raw = _export(client, auth, format="md", ids=rid, reviews="false").json()
    assert not any("review" in d for i in raw["images"] for d in (i["detections"] or []))


def test_export_selection_and_errors(client, team_key, other_team_key, app):
    team, auth = team_key
    db = app.state.platform.db
    a, b = new_batch(db, team), new_batch(db, team)
    both = _export(client, auth, format="md", ids=f"{a},{b}").json()
    files = [i["file"] for i in both["images"]]
    assert len(files) == 6 and len(set(files)) == 6  # the second batch's names are put under its id
    assert f"{b}/domestic_dog.jpg" in files
    ranged = _export(client, auth, format="md", since="2000-01-01T00:00:00Z")
    assert ranged.status_code == 200 and ranged.headers["x-sleuth-results"] == "2"
    assert _export(client, auth, format="md", until="2000-01-01T00:00:00Z").status_code == 404

    other, other_auth = other_team_key
    assert _export(client, other_auth, format="md", ids=a).status_code == 404  # isolation
    store(db, other, {"id": "11111111-1111-1111-1111-111111111111", "annotations": [], "info": {}}, "/v1/detect")
    assert _export(client, auth, format="md", since="2000-01-01T00:00:00Z").headers["x-sleuth-results"] == "2"

    for params, field in [
        ({"format": "xml", "ids": a}, "format"),
        ({"format": "md"}, "ids"),
        ({"format": "md", "since": "yesterday"}, "since"),
        ({"format": "md", "ids": a, "latitude": 10}, "latitude"),
        ({"format": "md", "ids": a, "threshold": 2}, "threshold"),
        ({"format": "md", "ids": ",".join([a] * 1001)}, "ids"),
        ({"format": "camtrap-dp", "ids": a}, "format"),  # no coordinates for Camtrap DP
        ({"format": "camtrap-dp", "ids": a, "timezone": "Mars/Olympus"}, "timezone"),
    ]:
        r = _export(client, auth, **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["field"] == field, (params, r.json())
    assert "latitude" in _export(client, auth, format="camtrap-dp", ids=a).json()["error"]["message"]
    ok = _export(client, auth, format="camtrap-dp", ids=a, placeholder_coordinates="true")
    assert ok.status_code == 200
    assert client.get("/v1/exports", params={"format": "md", "ids": a}).status_code == 401


def test_results_list(client, team_key, other_team_key, app):
    team, auth = team_key
    a = new_batch(app.state.platform.db, team)
    listed = client.get("/v1/results", headers=auth).json()
    assert listed["total"] == 1
    row = listed["data"][0]
    assert (row["id"], row["images"], row["boxes"], row["image_url"]) == (a, 3, 2, None)
    assert client.get("/v1/results", headers=other_team_key[1]).json()["total"] == 0
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/v1/results?ids={unknown}", headers=auth).json()["data"] == []
    bad = client.get("/v1/results?ids=nope", headers=auth)  # ids are UUIDs (the issue-17 contract)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "ids"


def test_sleuth_export_reads_api_responses(tmp_path, monkeypatch):
    """``sleuth export`` converts a saved /v1/batch-detect response (it used to refuse anything but MD files)."""
    from typer.testing import CliRunner
    from webapp_support import batch_payload

    from sleuth.cli.app import app as cli

    saved = tmp_path / "response.json"
    saved.write_text(json.dumps(batch_payload("0e9e3e8e-0000-4000-8000-000000000001")))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["export", str(saved), "-o", str(out), "-f", "md,csv", "--threshold", "0.5"])
    assert r.exit_code == 0, r.output
    md = json.loads((out / "results.json").read_text())
    assert md_validate(md)["errors"] == []
    assert [i["file"] for i in md["images"]] == ["domestic_dog.jpg", "blank.jpg", "broken.jpg"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["file"], r["category"]) for r in rows] == [
        ("domestic_dog.jpg", "animal"),
        ("blank.jpg", "blank"),
        ("broken.jpg", "failure"),
    ]
    # a list of single-image responses (detect, detect-url, job results) works too
    single = {
        "id": "a",
        "annotations": batch_payload("x")["results"][0]["annotations"],
        "info": {},
        "filename": "cam/one.jpg",
    }
    url = {"id": "b", "annotations": [], "info": {"source_url": "https://example.org/img/two.jpg?x=1"}}
    saved.write_text(json.dumps([single, url]))
    r = CliRunner().invoke(cli, ["export", str(saved), "-o", str(tmp_path / "one.json"), "-f", "md"])
    assert r.exit_code == 0, r.output
    assert [i["file"] for i in json.loads((tmp_path / "one.json").read_text())["images"]] == ["cam/one.jpg", "two.jpg"]
    saved.write_text(json.dumps({"hello": 1}))
    r = CliRunner().invoke(cli, ["export", str(saved), "-f", "csv", "-o", str(tmp_path / "x.csv")])
    assert r.exit_code == 1 and "neither a MegaDetector results file" in r.output


def test_reviewed_md_round_trips(tmp_path):
    from datetime import UTC, datetime

    from sleuth.exports import DetectionRecord, ImageRecord, read_md, write_md
    from sleuth.exports.records import ReviewMark

    when = datetime(2026, 6, 17, 8, 0, tzinfo=UTC)
    rec = ImageRecord(
        "a.jpg",
        [
            DetectionRecord(
                1,
                0.05,
                (0.1, 0.1, 0.2, 0.2),
                label=FOX,
                label_score=1.0,
                review=ReviewMark("corrected", "Ada", when, machine_label="dog"),
            )
        ],
        review=ReviewMark("reviewed", "Ada", when, rejected_boxes=2),
    )
    back, _ = read_md(write_md([rec], None, tmp_path / "r.json"))
    assert back[0].review == rec.review and back[0].detections[0].review == rec.detections[0].review
    assert back[0].kept(0.5) == back[0].detections  # a reviewed box is kept whatever the threshold


def test_repeat_detection_flags_reach_the_review_state_and_the_export(client, team_key, app):
    """Issue 14's per-camera repeat flag (``repeat_detection: true``) is shown and kept in exports."""
    from webapp_support import batch_payload

    team, auth = team_key
    payload = batch_payload("0e9e3e8e-0000-4000-8000-000000000002")
    payload["results"][0]["annotations"][1]["repeat_detection"] = True
    rid = store(app.state.platform.db, team, payload)
    boxes = client.get(f"/v1/reviews?result_id={rid}&index=0", headers=auth).json()["images"][0]["boxes"]
    assert [b["repeat"] for b in boxes] == [False, True]
    md = _export(client, auth, format="md", ids=rid).json()
    dog = next(i for i in md["images"] if i["file"] == "domestic_dog.jpg")
    assert [d.get("repeat_detection", False) for d in dog["detections"]] == [False, True]
    g = client.post(
        "/v1/upload-groups",
        headers=auth,
        json={"deployment": {"name": "x"}, "options": {"suppress_repeats": True}},
    ).json()
    assert g["job_options"]["suppress_repeats"] is True
    bad = client.post(
        "/v1/upload-groups", headers=auth, json={"deployment": {"name": "x"}, "options": {"suppress_repeats": "y"}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "options.suppress_repeats"
