"""Label strings, ranks, roll-up ancestors and API names (sleuth.pipelines.taxonomy)."""

from __future__ import annotations

import uuid

import pytest

from sleuth.pipelines import taxonomy as tx

RED_FOX = "ac0e8ba7-7261-4d17-8645-11ed3d02165a;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
CANIDAE = "3184697f-51ad-4608-9a28-9edb5500159c;mammalia;carnivora;canidae;;;canine family"
MAMMAL = "f2d233e3-80e3-433d-9687-e29ecc7a467a;mammalia;;;;;mammal"


def test_parse_format_roundtrip_and_fields() -> None:
    lab = tx.parse_label(RED_FOX)
    assert lab.id == "ac0e8ba7-7261-4d17-8645-11ed3d02165a"
    assert lab.taxa == ("mammalia", "carnivora", "canidae", "vulpes", "vulpes")
    assert lab.common == "red fox"
    assert tx.format_label(lab) == RED_FOX
    assert lab.full_class_string == "mammalia;carnivora;canidae;vulpes;vulpes"


@pytest.mark.parametrize("bad", ["", "a;b;c", RED_FOX + ";extra", "x;;;;;"])
def test_parse_rejects_wrong_field_count(bad: str) -> None:
    with pytest.raises(ValueError, match="7"):
        tx.parse_label(bad)


@pytest.mark.parametrize(
    ("label", "rank"),
    [
        (RED_FOX, "species"),
        ("id;mammalia;carnivora;canidae;vulpes;;vulpes species", "genus"),
        (CANIDAE, "family"),
        ("id;mammalia;carnivora;;;;carnivorous mammal", "order"),
        (MAMMAL, "class"),
        (tx.ANIMAL, "kingdom"),
        (tx.BLANK, "blank"),
        (tx.VEHICLE, "vehicle"),
        (tx.UNKNOWN, "unknown"),
        (tx.HUMAN, "species"),
    ],
)
def test_rank_of(label: str, rank: str) -> None:
    assert tx.rank_of(label) == rank


def test_ancestors_prefer_pack_labels_and_synthesise_the_rest() -> None:
    t = tx.Taxonomy([RED_FOX, CANIDAE, MAMMAL])
    got = {level: t.ancestor(RED_FOX, level) for level in tx.LEVELS}
    assert got["species"] is not None and got["species"].string == RED_FOX
    assert got["family"] is not None and got["family"].string == CANIDAE  # the pack's own name
    assert got["class"] is not None and got["class"].string == MAMMAL
    assert got["kingdom"] is not None and got["kingdom"].string == tx.ANIMAL
    genus, order = got["genus"], got["order"]
    assert genus is not None and order is not None
    assert genus.taxa == ("mammalia", "carnivora", "canidae", "vulpes", "")
    assert tx.common_name(genus) == "vulpes species"
    assert order.taxa == ("mammalia", "carnivora", "", "", "")
    assert tx.common_name(order) == "carnivora order"
    # synthesised ids: valid UUIDs, deterministic across instances, distinct per taxon
    again = tx.Taxonomy([RED_FOX])
    g2 = again.ancestor(RED_FOX, "genus")
    assert g2 is not None and g2.id == genus.id
    assert uuid.UUID(genus.id).version == 5
    assert genus.id != order.id
    # a taxonomy without the family label synthesises one with SpeciesNet's naming pattern
    fam = again.ancestor(RED_FOX, "family")
    assert fam is not None and tx.common_name(fam) == "canidae family" and fam.id != CANIDAE.split(";")[0]


def test_ancestors_of_non_taxa_and_kingdom() -> None:
    t = tx.Taxonomy()
    for special in (tx.BLANK, tx.VEHICLE, tx.UNKNOWN):
        assert all(t.ancestor(special, level) is None for level in tx.LEVELS)
    kingdom = t.ancestor(tx.ANIMAL, "kingdom")
    assert kingdom is not None and kingdom.string == tx.ANIMAL
    assert t.ancestor(tx.ANIMAL, "genus") is None
    assert [a.rank for a in t.ancestors(tx.HUMAN)] == ["genus", "family", "order", "class", "kingdom"]
    with pytest.raises(ValueError, match="level"):
        t.ancestor(RED_FOX, "tribe")


def test_is_descendant() -> None:
    t = tx.Taxonomy()
    assert t.is_descendant(RED_FOX, CANIDAE)
    assert t.is_descendant(RED_FOX, MAMMAL)
    assert t.is_descendant(RED_FOX, tx.ANIMAL)
    assert not t.is_descendant(CANIDAE, RED_FOX)
    assert not t.is_descendant(RED_FOX, RED_FOX)
    assert not t.is_descendant(RED_FOX, "id;aves;;;;;bird")
    assert not t.is_descendant(tx.BLANK, tx.ANIMAL)


def test_common_names_and_taxonomy_dict() -> None:
    assert tx.common_name(RED_FOX) == "red fox"
    assert tx.common_name("id;mammalia;carnivora;canidae;vulpes;vulpes;") == "vulpes vulpes"
    assert tx.common_name("id;aves;;;;;") == "aves class"
    assert tx.common_name(tx.UNKNOWN) == "unknown"
    assert tx.common_name(tx.BLANK) == "blank"
    d = tx.taxonomy_dict(RED_FOX)
    assert d == {
        "id": "ac0e8ba7-7261-4d17-8645-11ed3d02165a",
        "class": "mammalia",
        "order": "carnivora",
        "family": "canidae",
        "genus": "vulpes",
        "species": "vulpes",  # epithet only, as the SpeciesNet field
    }
    assert tx.taxonomy_dict(CANIDAE)["genus"] == "" and tx.taxonomy_dict(CANIDAE)["species"] == ""
    assert tx.taxonomy_dict(tx.UNKNOWN)["class"] == ""
