"""sleuth's per-box ensemble against upstream SpeciesNet's on the same inputs, and top_candidate=N.

``tests/classifier/golden_speciesnet/golden.json`` holds, per case, a detection, a classifier top-5 over the
release's labels, a country / US state, and what upstream ``SpeciesNetEnsemble.combine`` (speciesnet 5.0.6,
per-detection ensembling) answered with the release's taxonomy and geofence. sleuth must give the same
label, score and prediction source, except for its documented adaptations (pipelines/wildlife/__init__.py):
A1 - an animal-only detector box the classifier calls human is human; A3 - where SpeciesNet says "unknown",
the box keeps its detector label. No upstream package needed.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from sleuth.pipelines.taxonomy import Taxonomy
from sleuth.pipelines.wildlife import Detection, Geofence, ImageOptions, ensemble_image

GOLD = Path(__file__).resolve().parents[1] / "classifier" / "golden_speciesnet"
CASES = json.loads((GOLD / "golden.json").read_text())["ensemble"]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Taxonomy, Geofence]:
    d = tmp_path_factory.mktemp("snrel")
    with tarfile.open(GOLD / "release.tar.gz") as tf:
        tf.extractall(d, filter="data")
    tax = Taxonomy(ln for ln in (d / "taxonomy_release.txt").read_text().splitlines() if ln.strip())
    return tax, Geofence.from_json(d / "geofence_release.json")


def _run(case: dict, tax: Taxonomy, gf: Geofence, top_candidate: int | None = None) -> list:
    d = case["detection"]
    det = Detection(category=int(d["category"]), conf=d["conf"], bbox=d["bbox"])
    opts = ImageOptions(
        threshold=0.01, country=case["country"], admin1=case["admin1_region"], top_candidate=top_candidate
    )
    return ensemble_image([det], [list(zip(case["classes"], case["scores"], strict=True))], opts, gf, tax)


ADAPTED = {"animal-only box called human": "A1"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_per_box_label_matches_upstream(case: dict, release: tuple[Taxonomy, Geofence]) -> None:
    tax, gf = release
    up = case["upstream"]
    anns = _run(case, tax, gf)
    if up["class"].endswith(";blank"):
        assert anns == []  # blank boxes are dropped
        return
    (a,) = anns
    if case["name"] in ADAPTED:
        assert a.label == "human" and a.source == "classifier"
        return
    if ";no cv result;" in up["class"]:  # A3
        assert a.source == "detector_fallback"
        return
    assert a.label_string == up["class"], case["name"]
    assert a.score == pytest.approx(up["score"], abs=1e-6)
    assert a.source == up["source"]


def test_every_rule_family_is_covered() -> None:
    sources = {c["upstream"]["source"].split("+")[0] for c in CASES}
    assert {"detector", "classifier"} <= sources
    assert any("geofence" in c["upstream"]["source"] for c in CASES)
    assert {c["upstream"]["source"] for c in CASES} >= {"classifier+rollup_to_genus", "classifier+rollup_to_family"}


@pytest.mark.parametrize("n", [1, 3, 5, 10])
def test_top_candidate_gives_n_ranked_candidates(n: int, release: tuple[Taxonomy, Geofence]) -> None:
    """With the classes the pipeline reads (classes_wanted(n)), N distinct candidates, ranked by score."""
    from sleuth.pipelines.wildlife.ensemble import classes_wanted

    tax, gf = release
    labels = sorted({lab for c in CASES for lab in c["classes"]}, key=lambda s: (not s.endswith(";ocelot"), s))
    scores = [0.85] + [round(0.1 * 0.8**i, 6) for i in range(len(labels) - 1)]
    classes = list(zip(labels, scores, strict=True))[: classes_wanted(n)]
    det = Detection(category=1, conf=0.9, bbox=[0.1, 0.1, 0.5, 0.5])
    (a,) = ensemble_image([det], [classes], ImageOptions(top_candidate=n), gf, tax)
    assert a.label == "ocelot"
    cands = a.top_candidates or []
    assert len(cands) == n and len({c.label for c in cands}) == n and "ocelot" not in {c.label for c in cands}
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)


def test_top_candidates_one_per_taxon_when_classes_repeat_a_taxon(release: tuple[Taxonomy, Geofence]) -> None:
    """A stand-in classifier maps several of its classes onto one taxon: still N distinct candidates."""
    tax, gf = release
    ocelot = next(lab for lab in CASES[0]["classes"] + CASES[7]["classes"] if lab.endswith(";ocelot"))
    dog = next(lab for c in CASES for lab in c["classes"] if lab.endswith(";domestic dog"))
    elk = next(lab for c in CASES for lab in c["classes"] if lab.endswith(";elk"))
    hare = next(lab for c in CASES for lab in c["classes"] if lab.endswith(";tolai hare"))
    classes = [(ocelot, 0.9), (dog, 0.03), (dog, 0.02), (dog, 0.02), (elk, 0.01), (hare, 0.005)]
    det = Detection(category=1, conf=0.9, bbox=[0.1, 0.1, 0.5, 0.5])
    (a,) = ensemble_image([det], [classes], ImageOptions(top_candidate=3), gf, tax)
    labels = [c.label for c in a.top_candidates or []]
    assert a.label == "ocelot" and labels == ["domestic dog", "elk", "tolai hare"]
