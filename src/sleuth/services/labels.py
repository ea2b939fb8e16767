"""The labels a reviewer can give a box: the classifier pack's taxonomy, plus person, vehicle and animal.

A typed label resolves to a SpeciesNet 7-field label string when it names a known taxon by its common name
(``"red fox"``), its binomial (``"vulpes vulpes"``) or its full label string; anything else stays a plain name
(exported as typed, without a scientific name). ``human``/``person`` give the detector category person,
``vehicle`` and the pack's vehicle labels give vehicle, everything else animal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sleuth.pipelines.taxonomy import ANIMAL, HUMAN, VEHICLE, common_name, parse_label, taxonomy_dict

CATEGORY_OF_KIND = {"animal": 1, "human": 2, "vehicle": 3}


@dataclass(frozen=True)
class LabelEntry:
    name: str  # the API's common name
    label: str  # the SpeciesNet label string
    category: int  # 1 animal, 2 person, 3 vehicle

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.name,
            "label_string": self.label,
            "category": self.category,
            "taxonomy": taxonomy_dict(self.label),
        }


def common_name_of(label: str) -> str:
    """The name to show for a label string or plain label."""
    from sleuth.exports.taxonomy import parse_label as parse_export_label

    return parse_export_label(label).name


def _pack_labels(pack: str) -> list[tuple[str, str]]:
    """(label string, kind) of a SpeciesNet model folder's labels.txt, if the configured pack is one."""
    path = Path(pack)
    labels = path / "labels.txt"
    if pack == "coral" or not labels.is_file():
        return []
    out = []
    for line in labels.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.count(";") == 6:
            out.append((line, "animal"))
    return out


@lru_cache(maxsize=4)
def catalog(pack: str = "coral") -> tuple[LabelEntry, ...]:
    """Every label a reviewer can pick, sorted by name (first spelling of a name wins)."""
    rows: list[tuple[str, str]] = [(HUMAN, "human"), (VEHICLE, "vehicle"), (ANIMAL, "animal")]
    folder = resources.files("sleuth") / "data" / "taxonomy"
    for ref in sorted(folder.iterdir(), key=lambda r: r.name):
        if not ref.name.endswith(".json"):
            continue
        doc = json.loads(ref.read_text(encoding="utf-8"))
        rows.extend((e["label"], e["kind"]) for e in doc.get("labels", []) if e.get("kind") in CATEGORY_OF_KIND)
    rows.extend(_pack_labels(pack))
    seen: dict[str, LabelEntry] = {}
    for label, kind in rows:
        name = common_name(label)
        if name and name not in seen:
            seen[name] = LabelEntry(name, label, CATEGORY_OF_KIND[kind])
    return tuple(sorted(seen.values(), key=lambda e: e.name))


@lru_cache(maxsize=4)
def _index(pack: str) -> dict[str, LabelEntry]:
    out: dict[str, LabelEntry] = {}
    for e in catalog(pack):
        lab = parse_label(e.label)
        keys = [e.name, e.label]
        genus, species = lab.taxa[3], lab.taxa[4]
        if genus and species:
            keys.append(f"{genus} {species}")
        for k in keys:
            out.setdefault(k.strip().lower(), e)
    out.setdefault("person", out["human"])
    return out


def resolve(text: str, pack: str = "coral") -> LabelEntry:
    """The catalog entry a typed label names, or a plain (category animal) entry for an unknown name."""
    key = " ".join(text.split()).lower()
    if not key:
        raise ValueError("label must not be empty")
    if len(key) > 200:
        raise ValueError("label must be at most 200 characters")
    entry = _index(pack).get(key)
    if entry is not None:
        return entry
    if key.count(";") == 6:  # a full label string we do not know: keep it as given
        return LabelEntry(common_name(text.strip()), text.strip(), 1)
    return LabelEntry(key, key, 1)
