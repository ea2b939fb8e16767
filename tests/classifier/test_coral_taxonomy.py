"""The committed WordNet taxonomy files for the Coral label sets."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sleuth.models.classifier import BLANK, HUMAN, TAXONOMY_DIR, VEHICLE, load_taxonomy, parse_label

from .helpers import CORAL, ROOT

KINDS = {"animal", "human", "vehicle", "object", "background"}
NS = uuid.uuid5(uuid.NAMESPACE_DNS, "taxonomy.sleuth")


def _doc(model: str) -> dict[str, Any]:
    return json.loads((TAXONOMY_DIR / f"{model}.json").read_text(encoding="utf-8"))


def _by_source(model: str) -> dict[str, dict[str, Any]]:
    return {e["source_label"]: e for e in _doc(model)["labels"]}


@pytest.mark.parametrize(
    ("model", "n", "labels_file"),
    [
        ("coral-imagenet", 1001, "imagenet_labels.txt"),
        ("coral-inat-birds", 965, "inat_bird_labels.txt"),
    ],
)
def test_every_label_mapped(model: str, n: int, labels_file: str) -> None:
    doc = _doc(model)
    assert doc["num_labels"] == n == len(doc["labels"])
    assert [e["index"] for e in doc["labels"]] == list(range(n))
    assert "wordnet-base" in doc["source"]["wordnet"]
    for e in doc["labels"]:
        assert e["kind"] in KINDS
        f = parse_label(e["label"])
        uuid.UUID(f["id"])
        if e["kind"] in ("animal", "object"):
            six = e["label"].split(";", 1)[1]
            assert f["id"] == str(uuid.uuid5(NS, six))  # the documented id scheme
        if e["kind"] == "object":
            assert f["class"] == f["order"] == f["family"] == f["genus"] == f["species"] == ""
        assert e["label"] == e["label"].lower() or e["kind"] != "animal"
    # the recorded rank counts are the real counts
    counts = {r: 0 for r in ("class", "order", "family", "genus", "species")}
    for e in doc["labels"]:
        if e["kind"] == "animal":
            f = parse_label(e["label"])
            for r in counts:
                counts[r] += bool(f[r])
    assert counts == doc["animal_rank_counts"]
    path = CORAL / labels_file
    if path.is_file():  # the taxonomy belongs to exactly this labels file
        assert doc["labels_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert len(path.read_bytes().splitlines()) == n
    tax = load_taxonomy(model=model)
    assert tax.n == n and tax.labels_sha256 == doc["labels_sha256"]


def _fields(model: str, source: str) -> dict[str, str]:
    return parse_label(_by_source(model)[source]["label"])


def test_known_imagenet_examples() -> None:
    tiger_cat = _fields("coral-imagenet", "tiger cat")
    assert (tiger_cat["class"], tiger_cat["order"], tiger_cat["family"], tiger_cat["genus"]) == (
        "mammalia",
        "carnivora",
        "felidae",
        "felis",
    )
    lion = _fields("coral-imagenet", "lion, king of beasts, Panthera leo")
    assert [lion[k] for k in ("class", "order", "family", "genus", "species", "common_name")] == [
        "mammalia",
        "carnivora",
        "felidae",
        "panthera",
        "leo",
        "lion",
    ]
    elephant = _fields("coral-imagenet", "African elephant, Loxodonta africana")
    assert [elephant[k] for k in ("order", "family", "genus", "species")] == [
        "proboscidea",
        "elephantidae",
        "loxodonta",
        "africana",
    ]
    dog = _fields("coral-imagenet", "German shepherd, German shepherd dog, German police dog, alsatian")
    assert (dog["family"], dog["genus"], dog["species"]) == ("canidae", "canis", "familiaris")
    assert _fields("coral-imagenet", "goldfish, Carassius auratus")["family"] == "cyprinidae"
    assert _fields("coral-imagenet", "bald eagle, American eagle, Haliaeetus leucocephalus")["class"] == "aves"


def test_objects_people_vehicles_are_not_animals() -> None:
    src = _by_source("coral-imagenet")
    for name in ("bathtub, bathing tub, bath, tub", "cradle", "toilet tissue, toilet paper, bathroom tissue"):
        assert src[name]["kind"] == "object"
    assert src["scuba diver"]["kind"] == "human" and src["scuba diver"]["label"] == HUMAN
    for name in (
        "fire engine, fire truck",
        "pickup, pickup truck",
        "mountain bike, all-terrain bike, off-roader",
    ):
        assert src[name]["kind"] == "vehicle" and src[name]["label"] == VEHICLE
    assert src["background"]["label"] == BLANK
    # the two ImageNet "crane" classes are told apart by WordNet offset order
    cranes = [e for e in _doc("coral-imagenet")["labels"] if e["source_label"] == "crane"]
    assert sorted(e["kind"] for e in cranes) == ["animal", "object"]
    counts = _doc("coral-imagenet")["kind_counts"]
    assert counts["animal"] > 350 and counts["object"] > 450


def test_known_inat_examples() -> None:
    finch = _fields("coral-inat-birds", "Haemorhous mexicanus (House Finch)")
    assert [finch[k] for k in ("class", "genus", "species", "common_name")] == [
        "aves",
        "haemorhous",
        "mexicanus",
        "house finch",
    ]
    jay = _fields("coral-inat-birds", "Cyanocitta cristata (Blue Jay)")
    assert (jay["order"], jay["family"]) == ("passeriformes", "corvidae")  # genus Cyanocitta is in WordNet
    doc = _doc("coral-inat-birds")
    assert doc["labels"][964]["label"] == BLANK
    assert doc["animal_rank_counts"]["genus"] == doc["animal_rank_counts"]["species"] + 2  # 2 hybrids


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="wordnet-base not installed")
@pytest.mark.skipif(not CORAL.is_dir(), reason="../shared/data not present")
def test_script_reproduces_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_taxonomy.py"),
            "--out",
            str(tmp_path),
            "--labels",
            str(CORAL),
        ],
        check=True,
        capture_output=True,
    )
    for model in ("coral-imagenet", "coral-inat-birds"):
        fresh = json.loads((tmp_path / f"{model}.json").read_text(encoding="utf-8"))
        committed = _doc(model)
        fresh["source"].pop("wordnet"), committed["source"].pop("wordnet")  # dpkg version string may differ
        assert fresh == committed
