"""MD 1.6, Camtrap DP 1.0, CSV and COCO CT exports on records built from the shared manifest."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sleuth.exports import (
    CamtrapOptions,
    Deployment,
    DetectionRecord,
    ImageRecord,
    RunInfo,
    export,
    from_md_dict,
    read_deployments_csv,
    read_md,
    to_coco_dict,
    to_csv_text,
    to_md_dict,
    write_camtrap_dp,
)
from sleuth.exports.camtrap_dp import build_camtrap_dp
from sleuth.exports.megadetector import parse_datetime
from sleuth.exports.taxonomy import parse_label
from validators import md_validate, validate_camtrap_dp

from .conftest import VIDEO_FILE

# ----------------------------------------------------------------------------- MD format


def test_md_passes_megadetector_validator(run_records, tmp_path):
    records, info = run_records
    path = export(records, info, "md", tmp_path / "results.json")
    d = json.loads(path.read_text())
    res = md_validate(d)
    assert res["errors"] == [] and res["warnings"] == []
    n_boxes = sum(len(r.detections) for r in records)
    assert sum(res["detection_category_id_to_count"].values()) == n_boxes
    assert d["info"]["format_version"] == "1.6"
    assert d["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    by_file = {im["file"]: im for im in d["images"]}
    fail = by_file["animl_southwest/error_img.JPG"]
    assert fail["failure"] and fail["detections"] is None
    vid = by_file[VIDEO_FILE]
    assert vid["frame_rate"] == 25.0 and vid["frames_processed"] == [0, 25, 50]
    assert [det["frame_number"] for det in vid["detections"]] == [0, 25, 50]
    ele = by_file["speciesnet/african_elephants.jpg"]
    assert ele["datetime"] == "2010:08:04 08:43:15" and ele["width"] == 2048
    cls = ele["detections"][0]["classifications"]
    assert [c[1] for c in cls] == sorted((c[1] for c in cls), reverse=True)
    assert d["classification_categories"][cls[0][0]] == "african elephant"
    desc = d["classification_category_descriptions"][cls[0][0]]
    assert desc.endswith(";loxodonta;africana;african elephant")


def test_md_validator_catches_a_broken_file(run_records):
    records, info = run_records
    d = to_md_dict(records, info)
    d["images"][0]["detections"][0]["category"] = "7"
    assert md_validate(d)["errors"]


def test_md_round_trip(run_records, tmp_path):
    records, info = run_records
    md1 = to_md_dict(records, info)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(md1))
    back, info2 = read_md(path)
    assert to_md_dict(back, info2) == md1
    assert info2.detector == info.detector and info2.classifier == info.classifier
    assert info2.threshold == info.threshold and info2.completion_time == info.completion_time
    assert len(back) == len(records)
    for a, b in zip(records, back, strict=True):
        assert (a.file, a.width, a.height, a.datetime, a.failure) == (b.file, b.width, b.height, b.datetime, b.failure)
        assert len(a.detections) == len(b.detections)
        for da, db in zip(a.detections, b.detections, strict=True):
            assert da.category == db.category and abs(da.conf - db.conf) <= 5e-4 + 1e-12
            assert all(abs(x - y) <= 5e-5 + 1e-12 for x, y in zip(da.bbox, db.bbox, strict=True))
            assert da.label == db.label and da.frame_number == db.frame_number
    assert back[-1].is_video and back[-1].frames_processed == [0, 25, 50]


def test_md_aware_datetime_round_trip():
    tz = timezone(timedelta(hours=-7))
    rec = ImageRecord(
        file="cam1\\IMG_1.JPG",
        datetime=datetime(2021, 5, 29, 3, 51, 33, tzinfo=tz),
        detections=[DetectionRecord(1, 0.9, (0.1, 0.1, 0.2, 0.2), label="deer")],
    )
    d = to_md_dict([rec])
    assert d["images"][0]["file"] == "cam1/IMG_1.JPG"
    assert d["images"][0]["exif_metadata"]["OffsetTimeOriginal"] == "-07:00"
    back, _ = from_md_dict(d)
    assert back[0].datetime == rec.datetime and back[0].datetime.utcoffset() == timedelta(hours=-7)
    assert d["classification_categories"] == {"0": "deer"}


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"images": []}, "info"),
        ({"info": {"format_version": "1.1"}, "images": [], "detection_categories": {}}, "older than 1.3"),
        (
            {"info": {"format_version": "1.6"}, "images": [{"file": "a.jpg"}], "detection_categories": {}},
            "no detections list",
        ),
        (
            {
                "info": {"format_version": "1.6"},
                "detection_categories": {"1": "animal"},
                "images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, 1]}]}],
            },
            "bbox",
        ),
    ],
)
def test_md_reader_rejects_malformed(bad, msg):
    with pytest.raises(ValueError, match=msg):
        from_md_dict(bad)


def test_read_md_not_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(ValueError, match="not a JSON file"):
        read_md(p)


def test_parse_datetime_forms():
    assert parse_datetime("2010:08:04 08:43:15") == datetime(2010, 8, 4, 8, 43, 15)
    assert parse_datetime("2010-08-04T08:43:15Z") == datetime(2010, 8, 4, 8, 43, 15, tzinfo=UTC)
    assert parse_datetime("0000:00:00 00:00:00") is None
    assert parse_datetime(None) is None


# ----------------------------------------------------------------------------- Camtrap DP

DEPLOYMENTS_CSV = """folder,deploymentID,latitude,longitude,deploymentStart,deploymentEnd,locationName
speciesnet,sn-mixed,41.46,-72.1,,,speciesnet test images
animl_southwest,animl-sw,32.7,-117.1,,,
pw_ft_squirrels,squirrels,47.6,-122.3,2020-01-01T00:00:00Z,2020-02-01T00:00:00Z,
videos,video-sites,10.5,20.25,,,
"""


@pytest.fixture(scope="session")
def camtrap_package(run_records, tmp_path_factory) -> Path:
    records, info = run_records
    out = tmp_path_factory.mktemp("camtrap")
    dep_csv = out.parent / "deployments_input.csv"
    dep_csv.write_text(DEPLOYMENTS_CSV)
    export(records, info, "camtrap-dp", out / "pkg", deployments=dep_csv, gap_seconds=60)
    return out / "pkg"


def _table(pkg: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((pkg / f"{name}.csv").read_text())))


def test_camtrap_dp_validates(camtrap_package):
    assert validate_camtrap_dp(camtrap_package) == []


def test_camtrap_dp_content(camtrap_package, run_records):
    records, info = run_records
    desc = json.loads((camtrap_package / "datapackage.json").read_text())
    assert desc["profile"].endswith("/camtrap-dp-profile.json")
    deps = {r["deploymentID"]: r for r in _table(camtrap_package, "deployments")}
    assert set(deps) == {"sn-mixed", "animl-sw", "squirrels", "video-sites"}
    assert deps["squirrels"]["deploymentStart"] == "2020-01-01T00:00:00Z"
    assert deps["animl-sw"]["deploymentStart"] == "2013-03-31T16:27:36Z"  # earliest EXIF time
    assert deps["animl-sw"]["timestampIssues"] == "true"  # naive EXIF times, UTC assumed
    media = _table(camtrap_package, "media")
    ok = [r for r in records if r.failure is None]
    assert len(media) == len(ok)  # failures are left out
    obs = _table(camtrap_package, "observations")
    thr = info.threshold
    assert thr is not None
    expected = sum(max(1, len(r.kept(thr))) for r in ok)
    assert len(obs) == expected
    by_media = {m["filePath"]: m["mediaID"] for m in media}
    blank_id = by_media["speciesnet/blank.jpg"]
    blank_rows = [o for o in obs if o["mediaID"] == blank_id]
    assert [o["observationType"] for o in blank_rows] == ["blank"]
    ele = [o for o in obs if o["mediaID"] == by_media["speciesnet/african_elephants.jpg"]]
    assert ele[0]["scientificName"] == "Loxodonta africana"
    assert all(o["classifiedBy"] == "md_v5a.0.0.pt+speciesnet-v4.0.0a" for o in obs)
    assert all(o["classificationMethod"] == "machine" and o["observationLevel"] == "media" for o in obs)
    hv = [
        o["observationType"]
        for o in obs
        if o["mediaID"] == by_media["animl_southwest/Asian Plains_S012_2022-08-25_human_vehicle.jpg"]
    ]
    assert sorted(hv) == ["human", "vehicle"]  # the 0.158 person box is under the 0.2 threshold
    names = {t["scientificName"] for t in desc["taxonomic"]}
    assert {"Loxodonta africana", "Ursus americanus", "Canis familiaris"} <= names
    assert "Homo sapiens" not in names  # human boxes carry no scientific name
    # all squirrel frames have no timestamp -> singleton events
    sq = [o["eventID"] for o in obs if o["deploymentID"] == "squirrels"]
    assert len(set(sq)) == len({o["mediaID"] for o in obs if o["deploymentID"] == "squirrels"})


def test_camtrap_dp_validator_catches_errors(camtrap_package, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(camtrap_package, bad)
    text = (bad / "observations.csv").read_text()
    first = text.splitlines()[1]
    wrong = first.replace(",media,", ",media,cat,", 1).replace(",blank,", ",", 1).replace(",animal,", ",", 1)
    (bad / "observations.csv").write_text(text.replace(first, wrong.replace("m_", "zz_", 2), 1))
    errors = validate_camtrap_dp(bad)
    assert any("table" in e for e in errors)
    desc = json.loads((bad / "datapackage.json").read_text())
    desc["project"]["observationLevel"] = ["sequence"]
    (bad / "datapackage.json").write_text(json.dumps(desc))
    assert any(e.startswith("profile") for e in validate_camtrap_dp(bad))


def test_camtrap_dp_needs_coordinates(run_records, tmp_path):
    records, info = run_records
    subset = [r for r in records if r.file.startswith("speciesnet/")]
    with pytest.raises(ValueError, match="latitude/longitude"):
        write_camtrap_dp(subset, info, tmp_path / "p")
    path = write_camtrap_dp(
        subset,
        info,
        tmp_path / "p",
        CamtrapOptions(allow_placeholder_coordinates=True, timezone=timezone(timedelta(hours=3))),
    )
    assert validate_camtrap_dp(path.parent) == []
    dep = _table(path.parent, "deployments")[0]
    assert (dep["latitude"], dep["longitude"]) == ("0", "0") and "placeholder" in dep["deploymentComments"]
    assert dep["deploymentStart"].endswith("+03:00")


def test_camtrap_dp_without_any_timestamp_needs_deployment_dates(run_records, tmp_path):
    records, info = run_records
    squirrels = [r for r in records if r.file.startswith("pw_ft_squirrels/")]
    with pytest.raises(ValueError, match="start/end"):
        build_camtrap_dp(squirrels, info, CamtrapOptions(deployments=Deployment("sq", 47.6, -122.3)))


def test_deployments_csv_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("folder,lat\nx,1\n")
    with pytest.raises(ValueError, match="deploymentID"):
        read_deployments_csv(p)
    p.write_text("folder,deploymentID,latitude,longitude\nx,d1,95,0\n")
    with pytest.raises(ValueError, match="latitude"):
        read_deployments_csv(p)
    p.write_text("folder,deploymentID,latitude,longitude\nsite/a,d1,1.5,2\n,d0,3,4\n")
    deps = read_deployments_csv(p)
    assert deps["site/a"].latitude == 1.5 and deps[""].deployment_id == "d0"


# ----------------------------------------------------------------------------- CSV and COCO


def test_csv_rows(run_records):
    records, info = run_records
    rows = list(csv.DictReader(io.StringIO(to_csv_text(records, info))))
    thr = info.threshold
    assert thr is not None
    expected = sum(1 if r.failure else max(1, len(r.kept(thr))) for r in records)
    assert len(rows) == expected
    cats = {r["category"] for r in rows}
    assert cats == {"animal", "person", "vehicle", "blank", "failure"}
    fail = [r for r in rows if r["category"] == "failure"]
    assert {r["file"] for r in fail} == {"animl_southwest/error_img.JPG", "animl_southwest/error_vid.mp4"}
    ele = next(r for r in rows if r["file"] == "speciesnet/african_elephants.jpg" and r["label"])
    assert (ele["label"], ele["scientific_name"], ele["datetime"]) == (
        "african elephant",
        "Loxodonta africana",
        "2010-08-04 08:43:15",
    )
    vid = [r["frame_number"] for r in rows if r["file"] == VIDEO_FILE]
    assert vid == ["0", "25", "50"]


def test_coco_camera_traps(run_records):
    records, info = run_records
    d = to_coco_dict(records, info)
    assert d["categories"][0] == {"id": 0, "name": "empty"}
    names = {c["name"] for c in d["categories"]}
    assert {"african elephant", "animal", "person", "vehicle"} <= names
    assert all(n == n.lower() for n in names)
    images = {im["id"]: im for im in d["images"]}
    assert images["animl_southwest/error_img.JPG"]["corrupt"] is True
    assert not any(a["image_id"] == "animl_southwest/error_img.JPG" for a in d["annotations"])
    ids = [a["id"] for a in d["annotations"]]
    assert len(ids) == len(set(ids))
    ann = next(a for a in d["annotations"] if a["image_id"] == "speciesnet/african_elephants.jpg")
    x, y, w, h = ann["bbox_relative"]
    assert ann["bbox"] == pytest.approx([x * 2048, y * 1536, w * 2048, h * 1536], abs=0.01)
    blank = [a for a in d["annotations"] if a["image_id"] == "speciesnet/blank.jpg"]
    assert [a["category_id"] for a in blank] == [0] and "bbox" not in blank[0]
    # sequence fields: the squirrels have no datetime -> one-frame sequences
    sq = [im for im in d["images"] if im["location"] == "pw_ft_squirrels"]
    assert all(im["seq_num_frames"] == 1 and im["frame_num"] == 0 for im in sq)
    det = to_coco_dict(records, info, category_names="detector")
    assert {c["name"] for c in det["categories"]} == {"empty", "animal", "person", "vehicle"}


def test_export_rejects_unknown_format(run_records, tmp_path):
    records, info = run_records
    with pytest.raises(ValueError, match="unknown export format"):
        export(records, info, "xml", tmp_path / "x")


def test_taxonomy_parse():
    t = parse_label("3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog")
    assert (t.scientific_name, t.rank, t.name) == ("Canis familiaris", "species", "domestic dog")
    t = parse_label("uuid;mammalia;carnivora;felidae;;;cat family")
    assert (t.scientific_name, t.rank) == ("Felidae", "family")
    assert parse_label("f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank").scientific_name is None
    assert parse_label("coyote").name == "coyote" and parse_label("coyote").scientific_name is None


def test_bad_records_raise_value_error():
    with pytest.raises(ValueError):
        DetectionRecord(5, 0.5, (0, 0, 1, 1))
    with pytest.raises(ValueError):
        DetectionRecord(1, None, (0, 0, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ImageRecord(file="")
    assert RunInfo().resolve_threshold() == 0.2
