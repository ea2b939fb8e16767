"""Profiles by settings: which detector/classifier each runs and the ids the answers carry (no models loaded)."""

from __future__ import annotations

import pytest

from sleuth.services import wildlife as svc
from sleuth.services.model_selection import STANDIN, apply, selected
from sleuth.settings import Settings


def _s(**kw: str) -> Settings:
    return Settings(**kw)  # type: ignore[arg-type]


def test_defaults_are_unchanged() -> None:
    s = _s()
    for name in ("default", "urban"):
        assert apply(svc.PROFILES[name], s, False, None) == svc.PROFILES[name]
    assert apply(svc.PROFILES["default"], s, True, None).model_id == "mdlite-filter"


@pytest.mark.parametrize(
    ("env", "profile", "detector_only", "model_id", "detector", "relabeler"),
    [
        ({"wildlife_detector": "mdv1000-redwood", "classifier_pack": "speciesnet-4.0.3a"}, "default", False,
         "mdv1000-speciesnet", "mdv1000-redwood", None),
        ({"wildlife_detector": "mdv1000-redwood"}, "default", True, "mdv1000-redwood", "mdv1000-redwood", None),
        ({"filter_detector": "mdv1000-redwood", "wildlife_detector": "mdv5a.0.0"}, "default", True,
         "mdv1000-redwood", "mdv1000-redwood", None),
        ({"wildlife_detector": "mdv5a.0.0", "classifier_pack": "speciesnet-4.0.3a"}, "default", False,
         "mdv5a-speciesnet", "mdv5a.0.0", None),
        ({"wildlife_detector": "mdv5a.0.0"}, "default", False, "mdv5a-coral", "mdv5a.0.0", None),
        ({"urban_detector": "mdv5b.0.0", "classifier_pack": "speciesnet-4.0.3a"}, "urban", False,
         "mdv5b-speciesnet", "mdv5b.0.0", None),
        ({"classifier_pack": "speciesnet-4.0.3a"}, "default", False, "mdlite-speciesnet", "mdlite", "yolox-nano-coco"),
    ],
)  # fmt: skip
def test_selection_and_ids(env, profile, detector_only, model_id, detector, relabeler) -> None:  # type: ignore[no-untyped-def]
    s = _s(**env)
    clf = selected(s, profile, detector_only)[1]
    p = apply(svc.PROFILES[profile], s, detector_only, clf if clf and clf != "coral" else None)
    assert (p.model_id, p.detector, p.relabeler) == (model_id, detector, relabeler)
    if not detector_only and clf and clf != "coral":
        assert p.classifier == clf and p.model_version.endswith("+" + clf)
    if detector_only:
        assert p.classifier is None


def test_urban_can_keep_the_stand_in_while_default_runs_speciesnet() -> None:
    s = _s(classifier_pack="speciesnet-4.0.3a", urban_classifier="coral")
    urban = apply(svc.PROFILES["urban"], s, False, None)
    assert urban.classifier == STANDIN and urban.model_id == "yolox-nano-coral"
    assert apply(svc.PROFILES["default"], s, False, "speciesnet-4.0.3a").model_id == "mdlite-speciesnet"
