"""The scoring of benchmarks/accuracy.py (matching, don't-care boxes, label verdicts, equal-false-box recall)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def A():  # noqa: N802 - the module
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", ROOT / "benchmarks" / "accuracy.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["accuracy_benchmark"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_matching_is_one_to_one_best_score_first(A) -> None:
    truth = [[0.1, 0.1, 0.2, 0.2]]
    preds = [[0.1, 0.1, 0.2, 0.2], [0.11, 0.1, 0.2, 0.2]]
    assert A.match(preds, [0.5, 0.9], truth) == [None, 0]  # the better-scored box takes the truth
    assert A.match(preds, [0.5, 0.9], []) == [None, None]


def test_dont_care_boxes_are_neither_found_nor_false(A) -> None:
    item = A.Item(
        "speciesnet/x.jpg",
        "speciesnet",
        "animal",
        "african elephant",
        [A.Ref([0.1, 0.1, 0.2, 0.2], "animal", True), A.Ref([0.6, 0.6, 0.2, 0.2], "animal", False)],
    )
    boxes = [A.Box([0.1, 0.1, 0.2, 0.2], 0.9), A.Box([0.6, 0.6, 0.2, 0.2], 0.5), A.Box([0.4, 0.0, 0.1, 0.1], 0.3)]
    c, per_cat, pairs = A.score_boxes(item, boxes)
    assert (c.refs, c.found, c.false) == (1, 1, 1)
    assert per_cat["animal"].found == 1
    assert [r is None for _, r in pairs] == [False, False, True]


def test_label_verdicts_accept_both_spellings_and_know_what_they_cannot_check(A) -> None:
    cougar = A.TRUTH["cougar"]
    assert A.label_verdict("x;mammalia;carnivora;felidae;felis;concolor;cougar", cougar) == ("species", True)
    assert A.label_verdict("x;mammalia;carnivora;felidae;panthera;;panthera species", cougar) == ("genus", False)
    assert A.label_verdict("x;mammalia;;;;;mammalia class", cougar) == ("class", True)
    fox = A.TRUTH["fox"]  # which fox is not known
    assert A.label_verdict("x;mammalia;carnivora;canidae;vulpes;vulpes;red fox", fox) == ("species", None)
    assert A.label_verdict("x;mammalia;carnivora;canidae;;;canidae family", fox) == ("family", True)
    cattle = A.TRUTH["domestic cattle"]
    assert A.label_verdict("x;mammalia;artiodactyla;bovidae;bos;taurus;ox", cattle) == ("species", True)
    assert (
        A.label_verdict("x;aves;galliformes;tetraonidae;lyrurus;;black grouse", A.TRUTH["african elephant"])[1] is False
    )


def test_recall_at_equal_false_boxes_on_the_blanks(A) -> None:
    blank = A.Item("b.jpg", "speciesnet", "blank", "blank", [])
    animal = A.Item("a.jpg", "animl_southwest", "animal", "deer", [A.Ref([0.1, 0.1, 0.3, 0.3], "animal", True)])
    boxes = [[A.Box([0.5, 0.5, 0.1, 0.1], 0.3)], [A.Box([0.1, 0.1, 0.3, 0.3], 0.2)]]
    (k0, t0, f0, r0, _), (k1, t1, f1, _, _) = A.recall_at_blank_false([blank, animal], boxes, (0, 1))
    assert (k0, f0, r0) == (0, 0, 1) and t0 > 0.3  # no false box on the blank: the deer box (0.2) is lost too
    assert (k1, f1) == (1, 1) and t1 == 0.01
