"""SpeciesNet-style taxonomy labels: parse/format, rank, ancestors (roll-up), API names and taxonomy dicts.

A label string has seven ``;``-separated fields (SpeciesNet's format)::

    "<uuid>;<class>;<order>;<family>;<genus>;<species>;<common name>"
    "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog"

The ``species`` field holds the epithet only (``familiaris``); the taxonomy dict we return for the API keeps
it that way (see :func:`taxonomy_dict`). A "full class string" is the five taxon fields
(``"mammalia;carnivora;canidae;canis;familiaris"``); SpeciesNet's geofence map is keyed by it.

Roll-up labels come from a :class:`Taxonomy` built from the classifier pack's label list (its classifier
labels, plus its taxonomy release if it has one). When the pack has no label for an ancestor taxon, one is
synthesised: the id is ``uuid5(SLEUTH_TAXON_NAMESPACE, full_class_string)`` (deterministic, stable across
runs) and the common name follows SpeciesNet's own pattern for unnamed taxa -- ``"<genus> species"``,
``"<family> family"``, ``"<order> order"``, ``"<class> class"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ANIMAL",
    "BLANK",
    "HUMAN",
    "LEVELS",
    "SLEUTH_TAXON_NAMESPACE",
    "UNKNOWN",
    "VEHICLE",
    "Label",
    "Taxonomy",
    "common_name",
    "format_label",
    "full_class_string",
    "parse_label",
    "rank_of",
    "taxonomy_dict",
]

# SpeciesNet's special labels (ids as published in google/cameratrapai speciesnet/constants.py).
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
UNKNOWN = (
    "f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;no cv result;no cv result;no cv result;no cv result;no cv result;no cv result"
)

# Namespace for synthesised taxon ids: uuid5(NAMESPACE_URL, "https://sleuth.invalid/taxon").
SLEUTH_TAXON_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sleuth.invalid/taxon")

# Roll-up levels, most to least specific (SpeciesNet's names; "kingdom" is the ANIMAL label).
LEVELS: tuple[str, ...] = ("species", "genus", "family", "order", "class", "kingdom")
_FIELD_OF_LEVEL = {"species": 4, "genus": 3, "family": 2, "order": 1, "class": 0}


@dataclass(frozen=True)
class Label:
    """One parsed label string. ``taxa`` = (class, order, family, genus, species epithet)."""

    id: str
    taxa: tuple[str, str, str, str, str]
    common: str

    @property
    def string(self) -> str:
        return format_label(self)

    @property
    def full_class_string(self) -> str:
        return ";".join(self.taxa)

    @property
    def rank(self) -> str:
        return rank_of(self)

    @property
    def is_blank(self) -> bool:
        return self.id == _BLANK.id or (not any(self.taxa) and self.common == "blank")

    @property
    def is_vehicle(self) -> bool:
        return self.id == _VEHICLE.id or (not any(self.taxa) and self.common == "vehicle")

    @property
    def is_human(self) -> bool:
        return self.id == _HUMAN.id or self.taxa == _HUMAN.taxa

    @property
    def is_unknown(self) -> bool:
        return self.id == _UNKNOWN.id or self.taxa[0] == "no cv result"

    @property
    def is_animal_kingdom(self) -> bool:
        return self.id == _ANIMAL.id or (not any(self.taxa) and self.common == "animal")

    @property
    def is_taxon(self) -> bool:
        """An animal taxon (species .. kingdom, human included), i.e. not blank/vehicle/unknown."""
        if self.is_unknown:
            return False
        return bool(self.taxa[0]) or self.is_animal_kingdom


def parse_label(text: str) -> Label:
    """Parse a 7-field label string; ``ValueError`` if it does not have exactly 7 fields."""
    if not isinstance(text, str):
        raise ValueError(f"label must be a string, got {type(text).__name__}")
    parts = text.split(";")
    if len(parts) != 7:
        raise ValueError(f"expected a label of 7 ';'-separated fields, got {len(parts)}: {text!r}")
    parts = [p.strip() for p in parts]
    taxa = (parts[1].lower(), parts[2].lower(), parts[3].lower(), parts[4].lower(), parts[5].lower())
    return Label(id=parts[0], taxa=taxa, common=parts[6])


def format_label(label: Label) -> str:
    return ";".join((label.id, *label.taxa, label.common))


_BLANK = parse_label(BLANK)
_ANIMAL = parse_label(ANIMAL)
_HUMAN = parse_label(HUMAN)
_VEHICLE = parse_label(VEHICLE)
_UNKNOWN = parse_label(UNKNOWN)


def _as_label(label: Label | str) -> Label:
    return label if isinstance(label, Label) else parse_label(label)


def full_class_string(label: Label | str) -> str:
    return _as_label(label).full_class_string


def rank_of(label: Label | str) -> str:
    """``"species"``, ``"genus"``, ``"family"``, ``"order"``, ``"class"``, ``"kingdom"`` (the ANIMAL label),
    or for non-taxa ``"blank"``, ``"vehicle"``, ``"unknown"``."""
    lab = _as_label(label)
    if lab.is_unknown:
        return "unknown"
    if lab.is_blank:
        return "blank"
    if lab.is_vehicle:
        return "vehicle"
    for level in ("species", "genus", "family", "order", "class"):
        if lab.taxa[_FIELD_OF_LEVEL[level]]:
            return level
    return "kingdom" if lab.is_animal_kingdom else "unknown"


def _synth_common(taxa: tuple[str, ...]) -> str:
    cls, order, family, genus, species = taxa
    if species:
        return f"{genus} {species}".strip()
    if genus:
        return f"{genus} species"
    if family:
        return f"{family} family"
    if order:
        return f"{order} order"
    if cls:
        return f"{cls} class"
    return "animal"


def common_name(label: Label | str) -> str:
    """The API ``label``: the pack's common name, else a SpeciesNet-style synthesised one
    (``"vulpes vulpes"``, ``"canis species"``, ``"canidae family"``, ``"carnivora order"``,
    ``"mammalia class"``). Special labels map to ``blank``/``animal``/``human``/``vehicle``/``unknown``."""
    lab = _as_label(label)
    if lab.is_unknown:
        return "unknown"
    if lab.common:
        return lab.common
    return _synth_common(lab.taxa)


def taxonomy_dict(label: Label | str) -> dict[str, str]:
    """Animal Detect ``taxonomy`` object: ``{id, class, order, family, genus, species}``.

    ``species`` is the epithet only, exactly the SpeciesNet field (``"vulpes"`` for the red fox, as in
    the Animal Detect ``/detect`` example); the binomial is ``genus + " " + species``.
    Non-taxa (blank, vehicle, unknown) have empty taxon fields.
    """
    lab = _as_label(label)
    taxa = ("", "", "", "", "") if lab.is_unknown else lab.taxa
    return {
        "id": lab.id,
        "class": taxa[0],
        "order": taxa[1],
        "family": taxa[2],
        "genus": taxa[3],
        "species": taxa[4],
    }


def _ancestor_taxa(lab: Label, level: str) -> tuple[str, str, str, str, str] | None:
    if not lab.is_taxon:
        return None
    if level == "kingdom":
        return ("", "", "", "", "")
    if lab.is_animal_kingdom:
        return None
    i = _FIELD_OF_LEVEL[level]
    if not lab.taxa[i]:
        return None
    c, o, f, g, s = lab.taxa
    full = (c, o, f, g, s)
    return tuple(full[j] if j <= i else "" for j in range(5))  # type: ignore[return-value]


class Taxonomy:
    """Index of a pack's labels by full class string, with synthesised ancestors where the pack has none.

    ``Taxonomy(labels)`` accepts label strings (classifier labels, a taxonomy release, ...). The first
    label seen for a full class string wins (put the pack's preferred list first).
    """

    def __init__(self, labels: Iterable[str] = ()) -> None:
        self._by_fcs: dict[str, Label] = {}
        self._synth: dict[str, Label] = {}
        self.add(ANIMAL)
        for text in labels:
            self.add(text)

    def add(self, text: Label | str) -> Label:
        """Index one label (non-taxa such as blank/vehicle are parsed but not indexed)."""
        lab = _as_label(text)
        if lab.is_taxon:
            self._by_fcs.setdefault(lab.full_class_string, lab)
        return lab

    def __len__(self) -> int:
        return len(self._by_fcs)

    def __contains__(self, fcs: object) -> bool:
        return fcs in self._by_fcs

    def get(self, fcs: str) -> Label | None:
        """The pack's label for a full class string, or None."""
        return self._by_fcs.get(fcs)

    def lookup(self, taxa: tuple[str, str, str, str, str]) -> Label:
        """Label for a taxon: the pack's, else a synthesised one (deterministic uuid5 id)."""
        fcs = ";".join(taxa)
        found = self._by_fcs.get(fcs)
        if found is not None:
            return found
        synth = self._synth.get(fcs)
        if synth is None:
            sid = str(uuid.uuid5(SLEUTH_TAXON_NAMESPACE, fcs))
            synth = Label(id=sid, taxa=taxa, common=_synth_common(taxa))
            self._synth[fcs] = synth
        return synth

    def ancestor(self, label: Label | str, level: str) -> Label | None:
        """The label of ``label``'s ancestor at ``level`` (``"species"`` .. ``"kingdom"``), itself included
        when it is of that rank; None when the label has no taxon at that level (or is not a taxon)."""
        if level not in LEVELS:
            raise ValueError(f"unknown taxonomy level {level!r}; expected one of {LEVELS}")
        lab = _as_label(label)
        taxa = _ancestor_taxa(lab, level)
        if taxa is None:
            return None
        if level != "kingdom" and ";".join(taxa) == lab.full_class_string:
            return self._by_fcs.get(lab.full_class_string, lab)
        if level == "kingdom":
            return self._by_fcs[";;;;"]
        return self.lookup(taxa)

    def ancestors(self, label: Label | str) -> list[Label]:
        """Strict ancestors from genus up to kingdom (most specific first)."""
        lab = _as_label(label)
        out: list[Label] = []
        for level in LEVELS[1:]:
            anc = self.ancestor(lab, level)
            if anc is not None and anc.full_class_string != lab.full_class_string:
                out.append(anc)
        return out

    def is_descendant(self, label: Label | str, of: Label | str) -> bool:
        """True when ``label`` lies strictly below ``of`` (``red fox`` below ``canidae family``)."""
        lab, anc = _as_label(label), _as_label(of)
        if not (lab.is_taxon and anc.is_taxon):
            return False
        if lab.full_class_string == anc.full_class_string:
            return False
        if anc.is_animal_kingdom:
            return bool(lab.taxa[0])
        return all(a == "" or a == b for a, b in zip(anc.taxa, lab.taxa, strict=True)) and bool(anc.taxa[0])
