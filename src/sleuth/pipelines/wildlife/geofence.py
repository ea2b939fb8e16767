"""SpeciesNet-style geofencing: which labels a country (and US state) allows, and species per country."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sleuth.pipelines import geo
from sleuth.pipelines.taxonomy import Label, common_name, parse_label, taxonomy_dict
from sleuth.pipelines.wildlife.data import ImageOptions


class NoRangeData(LookupError):
    """The classifier pack has no range (geofence) data, so per-country answers cannot be given."""


GeofenceRules = Mapping[str, Any]  # full class string -> {"allow"|"block": {CCA3: [state, ...]}}


class Geofence:
    """SpeciesNet geofence map (``geofence_release.json``): full class string ->
    ``{"allow": {CCA3: [admin1, ...]}, "block": {CCA3: [admin1, ...]}}``; admin1 codes are SpeciesNet's
    2-letter US state codes (``"CA"``); an empty list means the whole country.

    A label is geofenced (not allowed) in a country when its entry has an allow list that lacks the country
    (or lists states and lacks the given state), or a block list naming the country (whole country, or the
    given state). Labels without an entry, and requests without a country, are never geofenced.
    """

    def __init__(self, rules: GeofenceRules | None) -> None:
        self.rules: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
        for fcs, entry in (rules or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"geofence entry for {fcs!r} must be an object")
            parsed: dict[str, dict[str, frozenset[str]]] = {}
            for kind in ("allow", "block"):
                countries = entry.get(kind)
                if countries:
                    parsed[kind] = {
                        str(c).upper(): frozenset(str(a).upper() for a in (r or ())) for c, r in countries.items()
                    }
            self.rules[fcs.lower()] = parsed

    @classmethod
    def from_json(cls, path: str | Path) -> Geofence:
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    @property
    def has_range_data(self) -> bool:
        return bool(self.rules)

    def is_blocked(self, label: Label | str, country: str | None, admin1: str | None = None) -> bool:
        if not country:
            return False
        lab = label if isinstance(label, Label) else parse_label(label)
        entry = self.rules.get(lab.full_class_string)
        if not entry:
            return False
        state = geo.speciesnet_admin1(admin1)
        state = state.upper() if state else None
        allow = entry.get("allow")
        if allow:
            if country not in allow:
                return True
            if state and allow[country] and state not in allow[country]:
                return True
        block = entry.get("block")
        if block and country in block:
            if not block[country]:
                return True
            if state and state in block[country]:
                return True
        return False

    def is_known_present(self, label: Label, country: str, admin1: str | None = None) -> bool:
        """Positive range evidence: an allow list naming the country, and not geofenced there."""
        entry = self.rules.get(label.full_class_string)
        return bool(entry and country in entry.get("allow", {})) and not self.is_blocked(label, country, admin1)


def _as_geofence(geofence: Geofence | GeofenceRules | None) -> Geofence | None:
    if geofence is None or isinstance(geofence, Geofence):
        return geofence
    return Geofence(geofence)


def geofence_applied(geofence: Geofence | GeofenceRules | None, options: ImageOptions) -> bool:
    """Whether ``country`` actually restricts labels: a country was given and the pack has range data.
    The API echoes ``country`` either way; this tells it whether to say geofencing was applied."""
    gf = _as_geofence(geofence)
    return bool(options.country and options.classify and gf is not None and gf.has_range_data)


def species_for_country(
    pack_geofence: Geofence | GeofenceRules | None,
    labels: Sequence[str],
    cca3: str,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Species of the pack (``labels``) known to occur in a country, from the pack's geofence data only.

    A species is listed when its geofence entry has an allow list naming the country and it is not blocked
    there; species without range data are not listed (no guessing). Sorted by common name then id.
    Returns ``{"country", "total", "limit", "offset", "species": [{"label", "taxonomy"}]}``.
    Raises ``NoRangeData`` when the pack has no geofence data, ``ValueError`` for an unknown country or a
    bad limit (1..100) / offset (>= 0).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValueError(f"limit must be an integer from 1 to 100, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    country = geo.resolve_country(cca3)
    gf = _as_geofence(pack_geofence)
    if gf is None or not gf.has_range_data:
        raise NoRangeData("the classifier pack has no range (geofence) data; cannot list species by country")
    seen: set[str] = set()
    found: list[Label] = []
    for text in labels:
        lab = parse_label(text)
        if lab.rank != "species" or lab.full_class_string in seen:
            continue
        seen.add(lab.full_class_string)
        if gf.is_known_present(lab, country):
            found.append(lab)
    found.sort(key=lambda lab: (common_name(lab), lab.id))
    page = found[offset : offset + limit]
    return {
        "country": country,
        "total": len(found),
        "limit": limit,
        "offset": offset,
        "species": [{"label": common_name(lab), "taxonomy": taxonomy_dict(lab)} for lab in page],
    }
