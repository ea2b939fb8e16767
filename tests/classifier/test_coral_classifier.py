"""The combined Coral pack on real camera-trap crops, crop helper and input errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sleuth.models.classifier import HUMAN, VEHICLE, ClassifierPack, crop_box, crop_box_px, parse_label

from .helpers import DATA, load_rgb, needs_data


def test_crop_box_px_semantics() -> None:
    # the reference recipe: clip to [0, 1], scale, truncate with int()
    assert crop_box_px(2048, 1536, [0.700043, 0.474187, 0.104844, 0.133002]) == (1433, 728, 1648, 932)
    assert crop_box_px(100, 50, [0.9, 0.9, 0.5, 0.5]) == (90, 45, 100, 50)
    assert crop_box_px(100, 100, [0.4, 0.4, 0.2, 0.2], margin=0.5) == (30, 30, 70, 70)
    assert crop_box_px(100, 100, [0.5, 0.5, 1e-6, 1e-6]) == (50, 50, 51, 51)  # at least one pixel
    img = np.zeros((50, 100, 3), np.uint8)
    assert crop_box(img, [0.1, 0.2, 0.3, 0.4]).shape == (20, 30, 3)
    for bad in ([0.1, 0.1, 0.0, 0.2], [0.1, 0.1, float("nan"), 0.2], [1.5, 0.1, 0.2, 0.2], [0.1, 0.2]):
        with pytest.raises(ValueError):
            crop_box_px(100, 100, bad)


@needs_data
def test_bad_inputs_raise_value_error(coral_pack: Any) -> None:
    for bad in (
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 5, 3), np.uint8),
        "x",
        np.zeros((4, 4, 5), np.uint8),
    ):
        with pytest.raises(ValueError):
            coral_pack.classify([bad])


@needs_data
def test_pack_api(coral_pack: Any) -> None:
    assert isinstance(coral_pack, ClassifierPack)
    assert coral_pack.model_id == "coral-imagenet+coral-inat-birds"
    assert coral_pack.geofence is None and coral_pack.has_range_data is False
    assert HUMAN in coral_pack.labels and VEHICLE in coral_pack.labels
    assert len(coral_pack.labels) == len(set(coral_pack.labels)) > 1000
    for lab in coral_pack.labels:
        parse_label(lab)


def _speciesnet_cases(manifest: dict[str, Any]) -> list[tuple[str, str, list[float]]]:
    return [
        (im["path"], im["expected_speciesnet"]["label"], im["expected_speciesnet"]["classifier_input_bbox"])
        for im in manifest["images"]
        if im.get("expected_speciesnet") and im["expected_speciesnet"]["classifier_input_bbox"]
    ]


@needs_data
def test_agreement_with_speciesnet(coral_pack: Any, manifest: dict[str, Any]) -> None:
    """Our top-1 vs SpeciesNet's top-1 at SpeciesNet's own classifier boxes (reported, and bounded)."""
    cases = _speciesnet_cases(manifest)
    crops = [crop_box(load_rgb(DATA / "camera_traps" / p), box) for p, _, box in cases]
    preds = coral_pack.classify(crops, top_k=5)
    batched_again = coral_pack.classify(crops[:3], top_k=5)
    assert batched_again == preds[:3]  # deterministic, batch-size independent
    agree = {"class": 0, "order": 0, "family": 0}
    lines = []
    for (path, expected, _), pred in zip(cases, preds, strict=True):
        assert 1 <= len(pred) <= 5 and all(0.0 < s <= 1.0 for _, s in pred)  # zero scores are dropped
        assert [s for _, s in pred] == sorted((s for _, s in pred), reverse=True)
        exp, got = parse_label(expected), parse_label(pred[0][0])
        for rank in agree:
            agree[rank] += bool(exp[rank]) and exp[rank] == got[rank]
        lines.append(f"  {path}: expected {exp['common_name']!r}, got {got['common_name']!r} ({pred[0][1]:.2f})")
    n = sum(bool(parse_label(e)["class"]) for _, e, _ in cases)  # crops SpeciesNet calls a taxon
    print(f"\nCoral vs SpeciesNet top-1 on {n} taxon crops: " + ", ".join(f"{k} {v}/{n}" for k, v in agree.items()))
    print("\n".join(lines))
    by_path = {p: pred for (p, _, _), pred in zip(cases, preds, strict=True)}
    top = {p: parse_label(pred[0][0]) for p, pred in by_path.items()}
    assert top["speciesnet/domestic_dog.jpg"]["genus"] == "canis"
    assert top["speciesnet/ocelot.jpg"]["family"] == "felidae"
    assert by_path["speciesnet/vehicle.jpg"][0][0] == VEHICLE
    for p in ("speciesnet/african_elephants.jpg", "speciesnet/african_elephants_cmyk.jpg"):
        assert any(parse_label(lab)["family"] == "elephantidae" for lab, _ in by_path[p][:3])
    assert agree["class"] >= n - 2  # measured: all but the human crop


@needs_data
def test_bird_crop_is_refined_by_inat_head(coral_pack: Any, manifest: dict[str, Any]) -> None:
    owl = next(im for im in manifest["images"] if im["path"].endswith("testdataowl.JPG"))
    box = max(owl["boxes"], key=lambda b: b["conf"])["bbox"]
    crop = crop_box(load_rgb(DATA / "camera_traps" / owl["path"]), box)
    pred = coral_pack.classify([crop], top_k=3)[0]
    print("\nowl crop:", pred)
    top = parse_label(pred[0][0])
    assert top["class"] == "aves"
    inat = set(coral_pack._birds.taxonomy.labels)
    assert pred[0][0] in inat  # the species comes from the iNat birds head
    assert top["order"] == "strigiformes"


@needs_data
def test_birds_head_only_when_the_main_head_says_bird(coral_pack: Any) -> None:
    """A crop whose best ImageNet answer is a mammal gets no iNat species, however much bird mass it has."""
    import numpy as np

    tax, btax = coral_pack._main.taxonomy, coral_pack._birds.taxonomy
    mammal = next(i for i, lab in enumerate(tax.labels) if lab.endswith(";african elephant"))
    bird = next(
        i for i, (lab, k) in enumerate(zip(tax.labels, tax.kinds, strict=True)) if k == "animal" and ";aves;" in lab
    )
    species = next(i for i, k in enumerate(btax.kinds) if k == "animal")
    main = np.zeros(tax.n, np.float32)
    birds = np.zeros(btax.n, np.float32)
    birds[species] = 0.9
    main[mammal], main[bird] = 0.6, 0.3
    assert not coral_pack._says_bird(main)
    out = coral_pack.combine(main, birds, 5)
    assert all(lab not in set(btax.labels) for lab, _ in out)  # the ImageNet bird entry stays, unrefined
    assert out[0][0] == tax.labels[mammal]
    main[mammal], main[bird] = 0.3, 0.6
    assert coral_pack._says_bird(main)
    out = coral_pack.combine(main, birds, 5)
    assert out[0][0] == btax.labels[species]
