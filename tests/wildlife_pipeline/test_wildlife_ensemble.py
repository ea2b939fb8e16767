"""SpeciesNet-style per-box ensemble rules, roll-up, geofence, smooth_herd, threshold, candidates."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from sleuth.pipelines import geo
from sleuth.pipelines import taxonomy as tx
from sleuth.pipelines.wildlife import (
    Annotation,
    Detection,
    Geofence,
    ImageOptions,
    NoRangeData,
    ensemble_image,
    geofence_applied,
    species_for_country,
)

MULE_DEER = "aaaa0001-0000-4000-8000-000000000001;mammalia;cetartiodactyla;cervidae;odocoileus;hemionus;mule deer"
WT_DEER = (
    "aaaa0002-0000-4000-8000-000000000002;mammalia;cetartiodactyla;cervidae;odocoileus;virginianus;white-tailed deer"
)
ELK = "aaaa0003-0000-4000-8000-000000000003;mammalia;cetartiodactyla;cervidae;cervus;canadensis;elk"
DEER_FAMILY = "aaaa0004-0000-4000-8000-000000000004;mammalia;cetartiodactyla;cervidae;;;deer family"
RED_FOX = "aaaa0005-0000-4000-8000-000000000005;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
GREY_FOX = "aaaa0006-0000-4000-8000-000000000006;mammalia;carnivora;canidae;urocyon;cinereoargenteus;gray fox"
COYOTE = "aaaa0007-0000-4000-8000-000000000007;mammalia;carnivora;canidae;canis;latrans;coyote"
BLACK_BEAR = "aaaa0008-0000-4000-8000-000000000008;mammalia;carnivora;ursidae;ursus;americanus;american black bear"
BROWN_BEAR = "aaaa0009-0000-4000-8000-000000000009;mammalia;carnivora;ursidae;ursus;arctos;brown bear"
ELEPHANT = "aaaa0010-0000-4000-8000-000000000010;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant"
TURKEY = "aaaa0011-0000-4000-8000-000000000011;aves;galliformes;phasianidae;meleagris;gallopavo;wild turkey"
MAMMAL = "f2d233e3-80e3-433d-9687-e29ecc7a467a;mammalia;;;;;mammal"

BOX = [0.1, 0.2, 0.3, 0.4]


def det(category: int = 1, conf: float = 0.9, bbox: list[float] | None = None) -> Detection:
    return Detection(category=category, conf=conf, bbox=list(bbox or BOX))


def one(category: int, conf: float, classes: list[tuple[str, float]] | None, **opts: Any) -> list[Annotation]:
    geofence = opts.pop("geofence", None)
    taxonomy = opts.pop("taxonomy", None)
    return ensemble_image([det(category, conf)], [classes], ImageOptions(**opts), geofence, taxonomy)


# --- human / vehicle -------------------------------------------------------------------------------------


def test_1a_confident_person_detection_is_human_whatever_the_classifier_says() -> None:
    (a,) = one(2, 0.9, [(MULE_DEER, 0.95)])
    assert (a.label, a.score, a.source) == ("human", 0.9, "detector")
    assert a.taxonomy["genus"] == "homo" and a.taxonomy["species"] == "sapiens"


def test_1b_mid_person_detection_needs_classifier_support() -> None:
    (a,) = one(2, 0.5, [(tx.HUMAN, 0.6), (MULE_DEER, 0.3)])
    assert (a.label, a.score, a.source) == ("human", 0.6, "classifier")
    (v,) = one(2, 0.5, [(tx.VEHICLE, 0.55)])
    assert (v.label, v.score) == ("human", 0.55)  # 1b: HUMAN or VEHICLE classification
    (f,) = one(2, 0.5, [(tx.BLANK, 0.6)])  # no rule for it: the detector's own label
    assert (f.label, f.score, f.source) == ("human", 0.5, "detector_fallback")


def test_2_vehicle_rules() -> None:
    (a,) = one(3, 0.8, [(tx.BLANK, 0.9)])
    assert (a.label, a.score, a.source) == ("vehicle", 0.8, "detector")  # 2b
    (b,) = one(3, 0.3, [(tx.VEHICLE, 0.45)])
    assert (b.label, b.score, b.source) == ("vehicle", 0.45, "classifier")  # 2c
    (c,) = one(3, 0.9, [(tx.HUMAN, 0.6)])
    assert (c.label, c.score) == ("human", 0.6)  # 2a wins over 2b
    assert c.taxonomy["id"] == tx.parse_label(tx.HUMAN).id
    assert b.taxonomy == {
        "id": "e2895ed5-780b-48f6-8a11-9e27cb594511",
        "class": "",
        "order": "",
        "family": "",
        "genus": "",
        "species": "",
    }


def test_animal_box_that_the_classifier_calls_human_is_human() -> None:
    (a,) = one(1, 0.6, [(tx.HUMAN, 0.7), (MULE_DEER, 0.2)])
    assert (a.label, a.score, a.source) == ("human", 0.7, "classifier")


# --- blank -------------------------------------------------------------------------------------------------


def test_3b_very_confident_blank_drops_the_box() -> None:
    assert one(1, 0.9, [(tx.BLANK, 0.995)]) == []


def test_3a_weak_box_with_blank_classification_is_dropped() -> None:
    assert one(1, 0.15, [(tx.BLANK, 0.6)], threshold=0.1) == []
    (kept,) = one(1, 0.3, [(tx.BLANK, 0.6)])  # det >= 0.2: 3a does not apply, nor 5b (det <= 0.5)
    assert (kept.label, kept.score, kept.source) == ("animal", 0.3, "detector_fallback")


def test_no_box_over_threshold_gives_no_annotations() -> None:
    dets = [det(1, 0.15), det(2, 0.1), det(3, 0.05)]
    cls = [[(MULE_DEER, 0.99)], [(tx.HUMAN, 0.99)], [(tx.VEHICLE, 0.99)]]
    assert ensemble_image(dets, cls, ImageOptions(threshold=0.2)) == []
    assert ensemble_image([], [], ImageOptions()) == []
    assert ensemble_image(dets, cls, ImageOptions(threshold=0.2, classify=False)) == []


# --- species and roll-up -----------------------------------------------------------------------------------


def test_4a_confident_species() -> None:
    (a,) = one(1, 0.3, [(MULE_DEER, 0.85), (WT_DEER, 0.1)])
    assert (a.label, a.score, a.source) == ("mule deer", 0.85, "classifier")
    assert a.taxonomy == {
        "id": "aaaa0001-0000-4000-8000-000000000001",
        "class": "mammalia",
        "order": "cetartiodactyla",
        "family": "cervidae",
        "genus": "odocoileus",
        "species": "hemionus",
    }
    assert a.bbox == BOX and a.id == 0 and a.top_candidates is None


def test_4b_needs_an_animal_detection_over_0_2() -> None:
    (a,) = one(1, 0.3, [(MULE_DEER, 0.7), (ELK, 0.1)])
    assert (a.label, a.source) == ("mule deer", "classifier")
    # same classification on a weak box: 4b fails, 5a rolls up to the genus (0.7 > 0.65)
    (b,) = one(1, 0.15, [(MULE_DEER, 0.7), (ELK, 0.1)], threshold=0.1)
    assert (b.label, b.source) == ("odocoileus species", "classifier+rollup_to_genus")
    assert b.score == pytest.approx(0.7)
    assert b.taxonomy["genus"] == "odocoileus" and b.taxonomy["species"] == ""


def test_5a_rollup_to_genus_when_the_leaf_is_weak() -> None:
    (a,) = one(1, 0.9, [(MULE_DEER, 0.4), (WT_DEER, 0.3), (ELK, 0.2)])
    assert a.source == "classifier+rollup_to_genus"
    assert a.label == "odocoileus species"
    assert a.score == pytest.approx(0.7)


def test_5a_rollup_to_family_uses_the_pack_name_when_known() -> None:
    classes = [(MULE_DEER, 0.4), (ELK, 0.3), (RED_FOX, 0.2)]
    (synth,) = one(1, 0.9, classes)
    assert synth.source == "classifier+rollup_to_family"
    assert synth.label == "cervidae family" and synth.score == pytest.approx(0.7)
    (named,) = one(1, 0.9, classes, taxonomy=tx.Taxonomy([DEER_FAMILY]))
    assert named.label == "deer family"
    assert named.taxonomy["id"] == "aaaa0004-0000-4000-8000-000000000004"


def test_5a_rollup_to_class_and_kingdom() -> None:
    (c,) = one(1, 0.9, [(MULE_DEER, 0.3), (RED_FOX, 0.2), (ELEPHANT, 0.2), (TURKEY, 0.1)])
    assert (c.source, c.label) == ("classifier+rollup_to_class", "mammalia class")
    (c2,) = one(1, 0.9, [(MULE_DEER, 0.3), (RED_FOX, 0.2), (ELEPHANT, 0.2)], taxonomy=tx.Taxonomy([MAMMAL]))
    assert c2.label == "mammal"
    (k,) = one(1, 0.9, [(MULE_DEER, 0.35), (TURKEY, 0.35)])
    assert (k.source, k.label) == ("classifier+rollup_to_kingdom", "animal")
    assert k.score == pytest.approx(0.7)


def test_5b_and_fallback_when_nothing_is_confident() -> None:
    (a,) = one(1, 0.6, [(MULE_DEER, 0.3), (TURKEY, 0.3)])
    assert (a.label, a.score, a.source) == ("animal", 0.6, "detector")
    (b,) = one(1, 0.6, None)  # box not classified at all
    assert (b.label, b.score, b.source) == ("animal", 0.6, "detector")
    assert b.taxonomy["id"] == tx.parse_label(tx.ANIMAL).id


def test_rules_use_only_the_top_5_classes() -> None:
    # six cervids of 0.12 each: the genus sum over the top 5 is 0.6 (< 0.65), over all six it would be 0.72
    classes = [(f"id{i};mammalia;cetartiodactyla;cervidae;odocoileus;sp{i};deer {i}", 0.12) for i in range(6)]
    (a,) = one(1, 0.4, classes)
    assert a.source == "detector_fallback"


# --- geofence ----------------------------------------------------------------------------------------------

FENCE: dict[str, Any] = {
    "mammalia;carnivora;canidae;vulpes;vulpes": {"block": {"USA": ["CA"], "AUS": []}},
    "mammalia;carnivora;ursidae;ursus;americanus": {"allow": {"USA": ["NY", "NJ", "PA"], "CAN": []}},
    "mammalia;carnivora;ursidae;ursus;arctos": {"allow": {"USA": ["AK", "MT", "WY"], "CAN": []}},
    "mammalia;proboscidea;elephantidae;loxodonta;africana": {"allow": {"KEN": [], "TZA": []}},
    "mammalia;proboscidea;elephantidae;;": {"allow": {"KEN": [], "TZA": [], "IND": []}},
    "mammalia;proboscidea;;;": {"allow": {"KEN": [], "TZA": [], "IND": []}},
}


def test_geofence_block_rolls_up_to_the_family() -> None:
    classes = [(RED_FOX, 0.9), (GREY_FOX, 0.05)]
    (au,) = one(1, 0.9, classes, country="AUS", geofence=FENCE)
    assert au.label == "canidae family"
    assert au.source == "classifier+geofence+rollup_to_family"
    assert au.score == pytest.approx(0.95)
    (gb,) = one(1, 0.9, classes, country="GBR", geofence=FENCE)
    assert (gb.label, gb.source) == ("red fox", "classifier")
    # state-level block: only California
    (ca,) = one(1, 0.9, classes, country="USA", admin1="US-CA", geofence=FENCE)
    (ny,) = one(1, 0.9, classes, country="USA", admin1="US-NY", geofence=FENCE)
    (us,) = one(1, 0.9, classes, country="USA", geofence=FENCE)
    assert ca.label == "canidae family" and ny.label == "red fox" and us.label == "red fox"
    # no country: never geofenced
    (none,) = one(1, 0.9, classes, geofence=FENCE)
    assert none.label == "red fox"


def test_geofence_allow_list_with_admin1_from_coordinates() -> None:
    classes = [(BLACK_BEAR, 0.9), (BROWN_BEAR, 0.05)]
    # the SpeciesNet test images' coordinates (41.46, -73.84) resolve to New York, where it is allowed
    ny = geo.admin1_for("USA", 41.46, -73.84)
    assert ny == "US-NY"
    (a,) = one(1, 0.9, classes, country="USA", admin1=ny, geofence=FENCE)
    assert (a.label, a.source) == ("american black bear", "classifier")
    ca = geo.admin1_for("USA", 38.58, -121.49)
    (b,) = one(1, 0.9, classes, country="USA", admin1=ca, geofence=FENCE)
    assert (b.label, b.source) == ("ursidae family", "classifier+geofence+rollup_to_family")
    (c,) = one(1, 0.9, classes, country="CAN", geofence=FENCE)
    assert c.label == "american black bear"
    (d,) = one(1, 0.9, classes, country="MEX", geofence=FENCE)  # country not in the allow list
    assert d.label == "ursidae family"


def test_geofence_rollup_skips_blocked_ancestors() -> None:
    # elephant in the USA: species, family and order are all fenced to KEN/TZA/IND -> class
    (a,) = one(1, 0.9, [(ELEPHANT, 0.9)], country="USA", geofence=FENCE)
    assert (a.label, a.source) == ("mammalia class", "classifier+geofence+rollup_to_class")
    (b,) = one(1, 0.9, [(ELEPHANT, 0.9)], country="IND", geofence=FENCE)
    assert (b.label, b.source) == ("elephantidae family", "classifier+geofence+rollup_to_family")


def test_geofence_is_honest_when_the_pack_has_no_range_data() -> None:
    opts = ImageOptions(country="united states")
    assert opts.country == "USA"
    assert not geofence_applied(None, opts)
    assert not geofence_applied({}, opts)
    assert geofence_applied(FENCE, opts)
    assert not geofence_applied(FENCE, ImageOptions())
    (a,) = one(1, 0.9, [(RED_FOX, 0.9)], country="AUS", geofence=None)
    assert a.label == "red fox"


def test_geofence_map_from_json_file(tmp_path: Path) -> None:
    import json

    path = tmp_path / "geofence_release.json"
    path.write_text(json.dumps(FENCE))
    gf = Geofence.from_json(path)
    assert gf.has_range_data
    assert gf.is_blocked(RED_FOX, "AUS") and not gf.is_blocked(RED_FOX, "GBR")
    assert gf.is_blocked(BLACK_BEAR, "USA", "CA") and not gf.is_blocked(BLACK_BEAR, "USA", "NJ")
    assert not gf.is_blocked(COYOTE, "AUS")  # no entry: not geofenced


# --- species_for_country ------------------------------------------------------------------------------------

LABELS = [RED_FOX, GREY_FOX, BLACK_BEAR, BROWN_BEAR, ELEPHANT, DEER_FAMILY, tx.BLANK]


def test_species_for_country_from_pack_data() -> None:
    usa = species_for_country(FENCE, LABELS, "us")
    assert usa["country"] == "USA"
    assert [s["label"] for s in usa["species"]] == ["american black bear", "brown bear"]
    assert usa["total"] == 2 and usa["species"][0]["taxonomy"]["genus"] == "ursus"
    ken = species_for_country(FENCE, LABELS, "Kenya")
    assert [s["label"] for s in ken["species"]] == ["african elephant"]
    page = species_for_country(FENCE, LABELS, "CAN", limit=1, offset=1)
    assert page["total"] == 2 and [s["label"] for s in page["species"]] == ["brown bear"]
    assert species_for_country(FENCE, LABELS, "AUS")["total"] == 0  # blocks are not presence


def test_species_for_country_without_range_data_or_bad_input() -> None:
    with pytest.raises(NoRangeData):
        species_for_country(None, LABELS, "USA")
    with pytest.raises(NoRangeData):
        species_for_country({}, LABELS, "USA")
    with pytest.raises(ValueError, match="Narnia"):
        species_for_country(FENCE, LABELS, "Narnia")
    for limit in (0, 101, True):
        with pytest.raises(ValueError, match="limit"):
            species_for_country(FENCE, LABELS, "USA", limit=limit)
    with pytest.raises(ValueError, match="offset"):
        species_for_country(FENCE, LABELS, "USA", offset=-1)


# --- smooth_herd, threshold, classify=false, candidates ----------------------------------------------------


def herd() -> tuple[list[Detection], list[list[tuple[str, float]]]]:
    dets = [
        det(1, 0.95, [0.1, 0.1, 0.2, 0.2]),
        det(1, 0.9, [0.4, 0.1, 0.2, 0.2]),
        det(1, 0.6, [0.7, 0.1, 0.2, 0.2]),
        det(1, 0.9, [0.1, 0.5, 0.2, 0.2]),
    ]
    cls = [
        [(RED_FOX, 0.92)],
        [(RED_FOX, 0.4), (GREY_FOX, 0.3)],  # canidae family roll-up (0.7)
        [(RED_FOX, 0.2), (TURKEY, 0.2)],  # nothing confident: "animal" (5b)
        [(ELEPHANT, 0.37), (MULE_DEER, 0.2), (RED_FOX, 0.15)],  # mammal class roll-up (0.72)
    ]
    return dets, cls


def test_smooth_herd_gives_broad_labels_the_precise_one() -> None:
    """Only a label of the same class and order, from a box at least as confident: the family-level fox takes
    "red fox"; "animal" and "mammalia class" name no order and keep their label (a cow called "mammal" next
    to a bear must not become a bear)."""
    dets, cls = herd()
    plain = ensemble_image(dets, cls, ImageOptions())
    assert [a.label for a in plain] == ["red fox", "mammalia class", "canidae family", "animal"]
    smooth = ensemble_image(dets, cls, ImageOptions(smooth_herd=True))
    assert [a.label for a in smooth] == ["red fox", "mammalia class", "red fox", "animal"]
    assert [a.score for a in smooth] == [a.score for a in plain]  # scores are kept
    assert smooth[2].source.endswith("+smooth_herd") and smooth[2].taxonomy == smooth[0].taxonomy
    assert not smooth[1].source.endswith("+smooth_herd") and not smooth[3].source.endswith("+smooth_herd")


def test_smooth_herd_donor_must_be_as_confident_and_of_the_same_category() -> None:
    dets = [det(1, 0.95), det(1, 0.9)]
    cls = [[(RED_FOX, 0.4), (GREY_FOX, 0.35)], [(RED_FOX, 0.7), (COYOTE, 0.05)]]  # family 0.75 vs donor 0.7
    out = ensemble_image(dets, cls, ImageOptions(smooth_herd=True))
    assert sorted(a.label for a in out) == ["canidae family", "red fox"]  # the donor is less confident
    person = ensemble_image(
        [det(2, 0.5), det(1, 0.9)],
        [[(RED_FOX, 0.4), (GREY_FOX, 0.35)], [(RED_FOX, 0.95)]],
        ImageOptions(smooth_herd=True),
    )
    assert sorted(a.label for a in person) == ["canidae family", "red fox"]  # a person-category box is no donor
    bear = ensemble_image(
        dets, [[(ELEPHANT, 0.35), (MULE_DEER, 0.35)], [(BLACK_BEAR, 0.95)]], ImageOptions(smooth_herd=True)
    )
    assert sorted(a.label for a in bear) == ["american black bear", "mammalia class"]


def test_smooth_herd_only_takes_labels_below_the_broad_one() -> None:
    dets = [det(1, 0.95), det(1, 0.9)]
    cls = [[(TURKEY, 0.9)], [(MULE_DEER, 0.4), (ELK, 0.3)]]  # a bird cannot refine a deer family
    out = ensemble_image(dets, cls, ImageOptions(smooth_herd=True))
    assert sorted(a.label for a in out) == ["cervidae family", "wild turkey"]


def test_smooth_herd_donor_must_pass_the_threshold() -> None:
    dets = [det(1, 0.95), det(1, 0.9)]
    cls = [[(MULE_DEER, 0.35), (ELK, 0.35)], [(WT_DEER, 0.85)]]
    out = ensemble_image(dets, cls, ImageOptions(smooth_herd=True, threshold=0.86))
    assert [a.label for a in out] == []  # family 0.7 < 0.86 and the donor 0.85 < 0.86 too
    out = ensemble_image(dets, cls, ImageOptions(smooth_herd=True, threshold=0.5))
    assert [a.label for a in out] == ["white-tailed deer", "white-tailed deer"]


def test_threshold_applies_to_the_final_score() -> None:
    dets = [det(3, 0.6), det(1, 0.9)]
    cls = [[(tx.VEHICLE, 0.45)], [(MULE_DEER, 0.9)]]  # vehicle via 2c scores 0.45
    assert [a.label for a in ensemble_image(dets, cls, ImageOptions(threshold=0.5))] == ["mule deer"]
    out = ensemble_image(dets, cls, ImageOptions(threshold=0.4))
    assert [(a.id, a.label) for a in out] == [(0, "mule deer"), (1, "vehicle")]  # sorted by score
    assert all(a.score >= 0.4 for a in out)


def test_classify_false_gives_coarse_detector_labels() -> None:
    dets = [det(1, 0.5), det(2, 0.8), det(3, 0.3), det(1, 0.1)]
    cls = [[(MULE_DEER, 0.99)]] * 4
    out = ensemble_image(dets, cls, ImageOptions(classify=False, top_candidate=3, country="USA"))
    assert [(a.label, a.score) for a in out] == [("human", 0.8), ("animal", 0.5), ("vehicle", 0.3)]
    assert all(a.top_candidates is None for a in out)
    assert out[1].taxonomy["id"] == tx.parse_label(tx.ANIMAL).id
    assert [a.to_dict()["id"] for a in out] == [0, 1, 2]
    assert "top_candidates" not in out[0].to_dict()


def test_top_candidates_ranked_alternatives_with_taxonomy() -> None:
    classes = [
        (COYOTE, 0.05),
        (RED_FOX, 0.4),
        (tx.BLANK, 0.1),
        (GREY_FOX, 0.3),
        (ELK, 0.02),
        (BLACK_BEAR, 0.01),
    ]
    (a,) = one(1, 0.9, classes, top_candidate=3)
    assert a.label == "canidae family"  # 0.4 + 0.3 + 0.05 at family level
    assert [c.label for c in a.top_candidates or []] == ["red fox", "gray fox", "coyote"]
    assert [c.score for c in a.top_candidates or []] == [0.4, 0.3, 0.05]
    cand = a.to_dict()["top_candidates"][1]
    assert cand == {"label": "gray fox", "score": 0.3, "taxonomy": tx.taxonomy_dict(GREY_FOX)}
    (b,) = one(1, 0.9, [(RED_FOX, 0.9), (GREY_FOX, 0.05), (COYOTE, 0.03)], top_candidate=10)
    assert b.label == "red fox"
    assert [c.label for c in b.top_candidates or []] == ["gray fox", "coyote"]  # the chosen label is left out
    (c,) = one(1, 0.9, [(RED_FOX, 0.9), (GREY_FOX, 0.05)], top_candidate=1, country="AUS", geofence=FENCE)
    assert [x.label for x in c.top_candidates or []] == ["gray fox"]  # geofenced red fox is no candidate
    (d,) = one(2, 0.9, None, top_candidate=2)
    assert d.top_candidates == []


# --- validation ---------------------------------------------------------------------------------------------


def test_options_validation() -> None:
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ValueError, match="threshold"):
            ImageOptions(threshold=bad)  # type: ignore[arg-type]
    for bad_k in (0, 11, True, 2.0):
        with pytest.raises(ValueError, match="top_candidate"):
            ImageOptions(top_candidate=bad_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Narnia"):
        ImageOptions(country="Narnia")
    with pytest.raises(ValueError, match="country"):
        ImageOptions(admin1="US-CA")
    assert ImageOptions(country="us", admin1="california").admin1 == "US-CA"


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="category"):
        Detection(category=4, conf=0.5, bbox=BOX)
    with pytest.raises(ValueError, match="confidence"):
        Detection(category=1, conf=1.5, bbox=BOX)
    with pytest.raises(ValueError, match="bbox"):
        Detection(category=1, conf=0.5, bbox=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="bbox"):
        Detection(category=1, conf=0.5, bbox=[0.1, 0.2, float("nan"), 0.1])
    with pytest.raises(ValueError, match="classification lists"):
        ensemble_image([det(), det()], [[(MULE_DEER, 0.9)]], ImageOptions())
    with pytest.raises(ValueError, match="7"):
        ensemble_image([det()], [[("not a label", 0.9)]], ImageOptions())
    with pytest.raises(ValueError, match="finite"):
        ensemble_image([det()], [[(MULE_DEER, float("nan"))]], ImageOptions())
    md = Detection.coerce({"category": "2", "conf": 0.8, "bbox": BOX})
    assert md == Detection(2, 0.8, BOX)
    with pytest.raises(ValueError, match="detection"):
        Detection.coerce({"conf": 0.8})


# --- invariants over random inputs --------------------------------------------------------------------------

POOL = [MULE_DEER, WT_DEER, ELK, DEER_FAMILY, RED_FOX, GREY_FOX, COYOTE, BLACK_BEAR, BROWN_BEAR, ELEPHANT]
POOL += [TURKEY, MAMMAL, tx.HUMAN, tx.VEHICLE, tx.BLANK, tx.ANIMAL]


@pytest.mark.parametrize("seed", range(40))
def test_invariants_on_random_images(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(0, 6)
    dets = [
        det(
            rng.choice([1, 1, 1, 2, 3]),
            round(rng.random(), 3),
            [rng.random() * 0.5, rng.random() * 0.5, 0.2, 0.2],
        )
        for _ in range(n)
    ]
    cls = []
    for _ in range(n):
        k = rng.randint(0, 6)
        raw = [rng.random() ** 2 for _ in range(k)]
        total = sum(raw) or 1.0
        cls.append([(lab, s / total) for lab, s in zip(rng.sample(POOL, k), raw, strict=True)])
    country = rng.choice([None, "USA", "AUS", "KEN", "CAN"])
    admin1 = rng.choice([None, "US-CA", "US-NY"]) if country == "USA" else None
    opts = ImageOptions(
        threshold=rng.choice([0.1, 0.2, 0.5]),
        country=country,
        admin1=admin1,
        smooth_herd=rng.random() < 0.5,
        top_candidate=rng.choice([None, 1, 3, 10]),
    )
    gf = Geofence(FENCE)
    out = ensemble_image(dets, cls, opts, geofence=gf)
    assert [a.id for a in out] == list(range(len(out)))
    assert [a.score for a in out] == sorted((a.score for a in out), reverse=True)
    assert len(out) <= sum(d.conf >= opts.threshold for d in dets)
    for a in out:
        assert a.score >= opts.threshold
        lab = tx.parse_label(a.label_string)
        assert a.label == tx.common_name(lab) and a.taxonomy == tx.taxonomy_dict(lab)
        assert not lab.is_blank and not lab.is_unknown
        assert not gf.is_blocked(lab, opts.country, opts.admin1), (a.label, opts)
        assert a.detection_conf >= opts.threshold
        if opts.top_candidate is None:
            assert a.top_candidates is None
        else:
            assert a.top_candidates is not None and len(a.top_candidates) <= opts.top_candidate
            scores = [c.score for c in a.top_candidates]
            assert scores == sorted(scores, reverse=True)
