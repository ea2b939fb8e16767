"""Which country a coordinate lies in (approximately): the web app derives a deployment's geofence country from it.

Data: ``sleuth/data/geo/country_points.json`` (GeoNames cities1000 snapped to a 0.2 degree grid, see
``data/geo/SOURCES.md`` and ``scripts/make_country_points.py``). :func:`country_for` answers the CCA3 code of the
nearest known place cell, or None when every cell is farther than the file's ``max_distance_km`` (open sea).
Near a land border the nearest cell can lie across it, so callers show the answer and let the user change it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from sleuth.pipelines import geo

__all__ = ["country_for"]


@dataclass(frozen=True)
class _Index:
    codes: tuple[str, ...]  # CCA3 per point ("" where the GeoNames code is not an ISO 3166-1 country)
    xyz: np.ndarray
    max_chord: float


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


@lru_cache(maxsize=1)
def _index() -> _Index:
    ref = resources.files("sleuth") / "data" / "geo" / "country_points.json"
    data = json.loads(ref.read_text(encoding="utf-8"))
    cell = float(data["cell_deg"])
    codes: list[str] = []
    packed: list[int] = []
    for cc, deltas in data["cells"].items():
        try:
            cca3 = geo.resolve_country(cc)
        except ValueError:
            cca3 = ""
        values = np.cumsum(np.asarray(deltas, dtype=np.int64))
        packed.extend(int(v) for v in values)
        codes.extend([cca3] * len(values))
    arr = np.asarray(packed, dtype=np.int64)
    lat = (arr // 10000 - 450) * cell
    lon = (arr % 10000 - 900) * cell
    max_chord = 2.0 * math.sin(float(data["max_distance_km"]) / geo.EARTH_RADIUS_KM / 2.0)
    return _Index(codes=tuple(codes), xyz=_unit(lat, lon), max_chord=max_chord)


def country_for(lat: float, lon: float) -> str | None:
    """CCA3 of the country around ``(lat, lon)``, or None (open sea, or the nearest place is not a country).

    Raises ``ValueError`` for coordinates out of range.
    """
    flat, flon = geo.validate_lat_lon(lat, lon)
    index = _index()
    point = _unit(np.array([flat]), np.array([flon]))[0]
    diff = index.xyz - point
    d2 = np.einsum("ij,ij->i", diff, diff)
    best = int(np.argmin(d2))
    if math.sqrt(float(d2[best])) > index.max_chord:
        return None
    return index.codes[best] or None
