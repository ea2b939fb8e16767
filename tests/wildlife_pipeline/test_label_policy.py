"""A pack's label policy: cross-class exclusions, per-rank cut-offs with roll-up, rank names; YOLOX-nano hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleuth.pipelines import taxonomy as tx
from sleuth.pipelines.wildlife import Detection, ImageOptions, ensemble_image
from sleuth.pipelines.wildlife.label_policy import LabelPolicy, load_label_policy, policy_named

ROOT = Path(__file__).resolve().parents[2]
CT = ROOT.parent / "shared" / "data" / "camera_traps"

GREY_WOLF = "aaaa0001-0000-4000-8000-000000000001;mammalia;carnivora;canidae;canis;lupus;gray wolf"
COYOTE = "aaaa0002-0000-4000-8000-000000000002;mammalia;carnivora;canidae;canis;latrans;coyote"
RED_FOX = "aaaa0003-0000-4000-8000-000000000003;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
BLACK_BEAR = "aaaa0004-0000-4000-8000-000000000004;mammalia;carnivora;ursidae;ursus;americanus;american black bear"
GROUSE = "aaaa0005-0000-4000-8000-000000000005;aves;galliformes;tetraonidae;lyrurus;;black grouse"
TUSKER = "aaaa0006-0000-4000-8000-000000000006;mammalia;;;;;tusker"
WHITE_WOLF = "aaaa0007-0000-4000-8000-000000000007;mammalia;carnivora;canidae;canis;;white wolf"

OPEN = LabelPolicy(never={"mammal": frozenset({"aves"}), "person": frozenset({"aves"})}, rank_names=True)


def one(classes: list[tuple[str, float]], policy: LabelPolicy | None, category: int = 1, hint: str | None = None):
    d = Detection(category=category, conf=0.9, bbox=[0.1, 0.1, 0.3, 0.3], hint=hint)
    return ensemble_image([d], [classes], ImageOptions(threshold=0.2), taxonomy=tx.Taxonomy(), policy=policy)


def test_a_box_called_a_mammal_or_a_person_never_gets_a_bird() -> None:
    cls = [(GROUSE, 0.85), (TUSKER, 0.1)]
    assert one(cls, None, hint="mammal")[0].label == "black grouse"  # the rules alone: the elephant is a grouse
    assert one(cls, OPEN, hint=None)[0].label == "lyrurus species"  # no hint: allowed (named at its rank)
    assert one(cls, OPEN, hint="bird")[0].label == "lyrurus species"
    (elephant,) = one(cls, OPEN, hint="mammal")
    assert "aves" not in elephant.label_string and elephant.taxonomy["class"] != "aves"
    assert elephant.label == "animal" and elephant.score == 0.9  # nothing else confident: the detector's
    # a person-category box (MD person, or relabelled by YOLOX-nano) likewise
    (person,) = one([(GROUSE, 0.6), (tx.HUMAN, 0.3)], OPEN, category=2)
    assert person.label == "human"
    # top_candidates leave the excluded class out too
    d = Detection(category=1, conf=0.9, bbox=[0.1, 0.1, 0.3, 0.3], hint="mammal")
    (a,) = ensemble_image([d], [cls], ImageOptions(top_candidate=3), taxonomy=tx.Taxonomy(), policy=OPEN)
    assert all(c.taxonomy.get("class") != "aves" for c in a.top_candidates or [])


def test_cut_offs_roll_a_weak_label_up_to_the_first_rank_that_reaches_its_own() -> None:
    cls = [(GREY_WOLF, 0.82), (COYOTE, 0.1), (RED_FOX, 0.05)]
    assert one(cls, OPEN)[0].label == "gray wolf"  # 4a: top species over 0.8
    p = OPEN.with_min_score({"species": 0.9, "genus": 0.9})
    (a,) = one(cls, p)
    assert a.label == "canis species" and a.score == pytest.approx(0.92)  # wolf + coyote
    assert a.source == "classifier+min_score_rollup_to_genus"
    (a,) = one(cls, OPEN.with_min_score({"species": 0.9, "genus": 0.95, "family": 0.95}))
    assert a.label == "canidae family" and a.score == pytest.approx(0.97)
    (a,) = one(cls, OPEN.with_min_score({"species": 1.01, "genus": 1.01, "family": 1.01, "order": 1.01, "class": 1.01}))
    assert (a.label, a.score, a.source) == ("animal", 0.9, "detector+min_score")  # no rank: the detector's animal
    # human, vehicle and detector labels are never touched
    never = OPEN.with_min_score(dict.fromkeys(("species", "genus", "family", "order", "class"), 1.01))
    assert one([(tx.HUMAN, 0.9)], never)[0].label == "human"
    assert one([(tx.VEHICLE, 0.9)], never, category=3)[0].label == "vehicle"


def test_rank_names_name_a_coarse_label_after_its_taxon() -> None:
    assert one([(WHITE_WOLF, 0.95)], None)[0].label == "white wolf"  # WordNet's leaf, whose taxonomy says genus
    assert one([(WHITE_WOLF, 0.95)], OPEN)[0].label == "canis species"
    (a,) = one([(TUSKER, 0.9)], OPEN)
    assert a.label == "mammalia class" and a.taxonomy["class"] == "mammalia" and not a.taxonomy["order"]
    assert one([(BLACK_BEAR, 0.9)], OPEN)[0].label == "american black bear"  # species keep their name


def test_policy_file_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown rank 'subspecies'"):
        LabelPolicy.from_dict({"min_score": {"subspecies": 0.5}})
    with pytest.raises(ValueError, match="unknown hint"):
        LabelPolicy.from_dict({"never": {"fish": ["aves"]}})
    with pytest.raises(ValueError, match="unknown keys"):
        LabelPolicy.from_dict({"cutoffs": {}})
    with pytest.raises(ValueError, match=r"min_score.genus must be a number"):
        LabelPolicy.from_dict({"min_score": {"genus": 2}})
    (tmp_path / "bad.toml").write_text("min_score = [")
    with pytest.raises(ValueError, match="bad.toml"):
        load_label_policy("bad", tmp_path)
    with pytest.raises(ValueError, match="bad label policy name"):
        policy_named("../x")


def test_shipped_coral_policy() -> None:
    p = policy_named("coral")
    assert p.rank_names and p.fitted_on
    assert set(p.min_score) == {"species", "genus", "family", "order", "class"}
    assert p.never["mammal"] == frozenset({"aves"}) and p.never["person"] and p.never["vehicle"]


def test_coco_hints() -> None:
    from sleuth.models.detection import Detection as Box
    from sleuth.models.yolox_nano import add_coco_hints

    md = [Box("1", 0.8, (0.1, 0.1, 0.2, 0.2)), Box("1", 0.7, (0.6, 0.6, 0.2, 0.2)), Box("1", 0.5, (0.4, 0.1, 0.1, 0.1))]
    coco = [
        Box("1", 0.6, (0.11, 0.1, 0.2, 0.21), "elephant", 20),
        Box("1", 0.4, (0.6, 0.6, 0.2, 0.19), "bird", 14),
        Box("1", 0.1, (0.4, 0.1, 0.1, 0.1), "dog", 16),  # under the hint threshold
    ]
    assert [d.hint for d in add_coco_hints(md, coco)] == ["mammal", "bird", None]
    assert add_coco_hints(md, []) == md


@pytest.mark.skipif(not CT.is_dir(), reason="shared camera-trap images not present")
def test_no_bird_on_the_shared_elephants_and_cattle() -> None:
    """On the real models: the elephant frames (called "black grouse" before) and the cattle get no bird."""
    from sleuth.services import wildlife as svc

    man = json.loads((CT / "manifest.json").read_text())["images"]
    paths = [r["path"] for r in man if r["label"] in ("african elephant", "domestic cattle")]
    profile = svc.resolve_profile("default")
    out = svc.run_images([svc.ImageInput(p, (CT / p).read_bytes()) for p in paths], ImageOptions(), profile)
    labels = [a for o in out for a in o.annotations]
    assert len(labels) >= 10
    assert all(a.taxonomy.get("class") != "aves" for a in labels), [a.label for a in labels]
    assert "tusker" not in {a.label for a in labels}  # class-level: named "mammalia class"
