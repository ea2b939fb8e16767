"""SpeciesNet label strings -> names used by the exports.

A SpeciesNet label is ``"<uuid>;<class>;<order>;<family>;<genus>;<species>;<common name>"``,
e.g. ``"3d80f1d6-...;mammalia;carnivora;canidae;canis;familiaris;domestic dog"``. Special
labels (blank, animal, vehicle, ...) have empty taxonomy fields. Any other string is treated
as a plain common name without taxonomy.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Common names of SpeciesNet labels that are not taxa.
NON_TAXA = frozenset({"blank", "animal", "vehicle", "unknown", "no cv result"})


@dataclass(frozen=True)
class Taxon:
    label: str
    uuid: str = ""
    class_: str = ""
    order: str = ""
    family: str = ""
    genus: str = ""
    species: str = ""
    common_name: str = ""

    @property
    def is_taxon(self) -> bool:
        return bool(self.class_ or self.order or self.family or self.genus) and (
            self.common_name.lower() not in NON_TAXA
        )

    @property
    def scientific_name(self) -> str | None:
        """``Genus species`` where known, else the most precise taxon name (capitalised)."""
        if not self.is_taxon:
            return None
        if self.genus and self.species:
            return f"{self.genus.capitalize()} {self.species.lower()}"
        for name in (self.genus, self.family, self.order, self.class_):
            if name:
                return name.capitalize()
        return None

    @property
    def rank(self) -> str | None:
        if not self.is_taxon:
            return None
        if self.genus and self.species:
            return "species"
        for rank, name in (
            ("genus", self.genus),
            ("family", self.family),
            ("order", self.order),
            ("class", self.class_),
        ):
            if name:
                return rank
        return None

    @property
    def name(self) -> str:
        """Human name: the common name, else the scientific name, else the raw label."""
        return self.common_name or self.scientific_name or self.label


def parse_label(label: str) -> Taxon:
    """Parse a SpeciesNet 7-field label; a plain string becomes a common name only."""
    parts = label.split(";")
    if len(parts) == 7:
        uuid, cls, order, family, genus, species, common = (p.strip() for p in parts)
        return Taxon(label, uuid, cls, order, family, genus, species, common)
    return Taxon(label, common_name=label.strip())
