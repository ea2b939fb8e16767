"""Geofence driven by the SpeciesNet test images' instances (country, coordinates) and real labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleuth.pipelines import geo
from sleuth.pipelines.wildlife import Detection, ImageOptions, ensemble_image

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT.parent / "shared" / "data" / "camera_traps" / "manifest.json"
pytestmark = pytest.mark.skipif(not MANIFEST.is_file(), reason="../shared/data not present")


def _records() -> list[dict]:
    out = []
    for r in json.loads(MANIFEST.read_text())["images"]:
        exp = r.get("expected_speciesnet") or {}
        fields = (exp.get("label") or "").split(";")
        is_human = fields[4:6] == ["homo", "sapiens"]  # people are never geofenced
        if r.get("country") and len(fields) == 7 and fields[5] and not is_human and exp.get("classifier_input_bbox"):
            out.append(r)
    return out


def _fcs(label: str) -> str:
    return ";".join(label.split(";")[1:6])


def test_instances_countries_keep_or_roll_up_the_species() -> None:
    records = _records()
    assert {r["country"] for r in records} >= {"KEN", "TZA", "UGA", "ZAF", "BWA", "USA"}
    for r in records:
        exp = r["expected_speciesnet"]
        label = exp["label"]
        # the species is allowed only in the country the image's instance says it was taken in
        fence = {_fcs(label): {"allow": {r["country"]: []}}}
        det = [Detection(category=1, conf=0.9, bbox=list(exp["classifier_input_bbox"]))]
        cls = [[(label, 0.95)]]
        here = ensemble_image(det, cls, ImageOptions(country=r["country"]), geofence=fence)
        assert here[0].label == exp["common_name"], r["path"]
        elsewhere_country = "FRA" if r["country"] != "FRA" else "DEU"
        there = ensemble_image(det, cls, ImageOptions(country=elsewhere_country), geofence=fence)
        assert there[0].label != exp["common_name"], r["path"]
        assert there[0].taxonomy["species"] == "" and there[0].taxonomy["family"] == label.split(";")[3]


def test_instance_coordinates_drive_the_us_state_rule() -> None:
    bear = next(r for r in _records() if r["country"] == "USA" and r.get("lat") is not None)
    exp = bear["expected_speciesnet"]
    state = geo.admin1_for("USA", bear["lat"], bear["lon"])
    assert state is not None
    fence = {_fcs(exp["label"]): {"allow": {"USA": [geo.speciesnet_admin1(state)]}}}
    det = [Detection(category=1, conf=0.9, bbox=list(exp["classifier_input_bbox"]))]
    cls = [[(exp["label"], 0.95)]]
    in_state = ensemble_image(det, cls, ImageOptions(country="USA", admin1=state), geofence=fence)
    assert in_state[0].label == exp["common_name"]
    other = "US-CA" if state != "US-CA" else "US-TX"
    out_of_state = ensemble_image(det, cls, ImageOptions(country="USA", admin1=other), geofence=fence)
    assert out_of_state[0].label != exp["common_name"]
