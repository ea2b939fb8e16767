"""Which detector and classifier each wildlife profile runs, chosen by settings, and what the answers call them.

Settings (environment ``SLEUTH_...``; empty = the profile's built-in model):

* ``wildlife_detector`` - the default profile's detector (``mdlite``, ``mdv5a.0.0``, ``mdv1000-redwood``, ...);
* ``urban_detector`` - the urban profile's (``yolox-nano-coco`` built in);
* ``filter_detector`` - the detector-only filter endpoints' (else each profile's detector);
* ``classifier_pack`` - the species classifier: ``coral`` (the stand-in), a catalog entry
  (``speciesnet-4.0.3a``) or a SpeciesNet model folder; ``urban_classifier`` overrides it for urban.

Ids follow Animal Detect where the same models run: ``mdv1000-speciesnet`` (MDv1000-redwood + SpeciesNet),
``mdv1000-redwood`` (its filter); otherwise ``<detector>-<classifier>`` (``mdv5a-speciesnet``,
``mdlite-coral``). :func:`check_selection` runs when the server or ``sleuth detect`` starts: a named model
that is not installed fails there, with the command that installs it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sleuth.settings import Settings


class SelectionError(ValueError):
    """A setting names a model that cannot be served (unknown, not installed, wrong kind)."""


MDLITE = ("mdlite", "mdlite-fp32")
STANDIN = "coral-stand-in"  # the Coral pack itself ("coral" in a profile means the configured classifier)
DETECTOR_TASKS = ("animal-detection", "object-detection")
CLASSIFIER_TASKS = ("species-classification",)


def detector_id(name: str) -> str:
    """The short id of a detector in model ids: ``mdlite``, ``yolox-nano``, ``mdv5a``, ``mdv1000-redwood``."""
    if name in MDLITE:
        return "mdlite"
    if name == "yolox-nano-coco":
        return "yolox-nano"
    for family in ("mdv5a", "mdv5b"):
        if name.startswith(family + "."):
            return family
    return name


def classifier_id(source: str) -> str:
    return "coral" if source in ("coral", STANDIN) else "speciesnet"


def model_id(detector: str, classifier: str | None) -> str:
    det = detector_id(detector)
    if classifier is None:
        return det
    clf = classifier_id(classifier)
    if det == "mdv1000-redwood" and clf == "speciesnet":
        return "mdv1000-speciesnet"  # Animal Detect's name for the same pair
    return f"{det}-{clf}"


def _setting(settings: Settings, key: str) -> str:
    return str(getattr(settings, key, "") or "").strip()


def selected(settings: Settings, profile: str, detector_only: bool) -> tuple[str | None, str | None]:
    """(detector, classifier) the settings name for a profile (None: the profile's own)."""
    det_key = {"default": "wildlife_detector", "urban": "urban_detector"}.get(profile, "")
    det = (_setting(settings, "filter_detector") if detector_only else "") or (
        _setting(settings, det_key) if det_key else ""
    )
    clf = _setting(settings, "urban_classifier") if profile == "urban" else ""
    clf = clf or _setting(settings, "classifier_pack")
    return det or None, clf or None


def apply(p: Any, settings: Settings, detector_only: bool, classifier_tag: str | None) -> Any:
    """The profile ``p`` with the selected detector/classifier and ids saying what runs.

    ``classifier_tag``: the loaded pack's id for ``model_version`` (``speciesnet-4.0.3a``), None for Coral.
    """
    det, clf = selected(settings, p.name.removesuffix("-filter"), detector_only)
    out = p
    if det and det != p.detector and not (det in MDLITE and p.detector in MDLITE):
        version = det
        out = dataclasses.replace(
            out,
            detector=det,
            relabeler=p.relabeler if det in MDLITE else None,  # MegaDetectors have person/vehicle classes
            model_id=model_id(det, p.classifier),
            model_version=version + ("+" + p.model_version.split("+", 1)[1] if "+" in p.model_version else ""),
            description=f"{det} detector"
            + (" + " + p.description.split(" + ", 1)[1] if " + " in p.description else ""),
        )
    if detector_only:
        base = out.detector_only()
        if det is None or det in MDLITE:
            return base
        return dataclasses.replace(base, model_id=detector_id(det), model_version=det)
    if clf == "coral" and out.classifier and _setting(settings, "classifier_pack") not in ("", "coral"):
        return dataclasses.replace(out, classifier=STANDIN)  # e.g. urban on the stand-in, default on SpeciesNet
    if clf and clf != "coral" and out.classifier:
        tag = classifier_tag or "speciesnet"
        out = dataclasses.replace(
            out,
            classifier=clf,
            model_id=model_id(out.detector, clf),
            model_version=out.model_version.split("+")[0] + "+" + tag,
            description=out.description.split(" + Coral")[0] + f" + SpeciesNet ({tag})",
        )
    return out


def classifier_tag(source: str) -> str | None:
    """The classifier's id in ``model_version``: the catalog name (``speciesnet-4.0.3a``), or a folder's
    ``speciesnet-<info.json version>``; None for the Coral stand-in."""
    import json

    if source == "coral":
        return None
    if "/" not in source and not source.startswith("."):
        return source
    try:
        version = json.loads((Path(source) / "info.json").read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        version = None
    return f"speciesnet-{version}" if version else f"speciesnet-{Path(source).name}"


def resolve(p: Any, settings: Settings, detector_only: bool = False) -> Any:
    """:func:`apply` with the classifier's tag read from the settings (nothing is loaded)."""
    clf = selected(settings, p.name, detector_only)[1]
    return apply(p, settings, detector_only, classifier_tag(clf) if clf else None)


def _catalog() -> dict[str, Any]:
    from sleuth.engine import catalog as cat

    return cat.load_catalog()


def _check_catalog_model(setting: str, name: str, tasks: tuple[str, ...], catalog: dict[str, Any]) -> None:
    from sleuth.engine import catalog as cat

    entry = catalog.get(name)
    if entry is None or entry.task not in tasks:
        known = ", ".join(n for n, e in catalog.items() if e.task in tasks and e.servable)
        raise SelectionError(f"SLEUTH_{setting.upper()}={name}: no such model; choose one of {known}")
    if not entry.servable:
        note = entry.extra.get("manual_export")
        raise SelectionError(
            f"SLEUTH_{setting.upper()}={name}: this model cannot be served by sleuth yet"
            + (f" ({note})" if isinstance(note, str) else "")
        )
    if cat.status(entry) != "installed":
        how = f"run `sleuth models pull {name}` first"
        if entry.name.startswith("speciesnet-"):
            how += " (or `sleuth models import PATH` with the release folder you downloaded)"
        raise SelectionError(f"SLEUTH_{setting.upper()}={name} is not installed; {how}")
    if entry.extra.get("classifier_type") == "full_image":
        raise SelectionError(
            f"SLEUTH_{setting.upper()}={name} is SpeciesNet's whole-image classifier; sleuth classifies each "
            "detector box, so use the crop classifier of the same release (the 'a' variant)"
        )


def check_classifier_source(setting: str, source: str, catalog: dict[str, Any] | None = None) -> None:
    if source == "coral":
        return
    catalog = catalog if catalog is not None else _catalog()
    if source in catalog:
        _check_catalog_model(setting, source, CLASSIFIER_TASKS, catalog)
        return
    p = Path(source)
    if not (p / "info.json").is_file():
        known = ", ".join(n for n, e in catalog.items() if e.task in CLASSIFIER_TASKS and n.startswith("speciesnet"))
        raise SelectionError(
            f"SLEUTH_{setting.upper()}={source}: neither 'coral', a catalog model ({known}) nor a SpeciesNet "
            "model folder with info.json; install one with `sleuth models pull speciesnet-4.0.3a`"
        )


def check_selection(settings: Settings) -> None:
    """Fail now, with the command to run, if a setting names a model that cannot be served."""
    catalog = _catalog()
    for key in ("wildlife_detector", "urban_detector", "filter_detector"):
        name = _setting(settings, key)
        if name:
            _check_catalog_model(key, name, DETECTOR_TASKS, catalog)
    for key in ("classifier_pack", "urban_classifier"):
        src = _setting(settings, key)
        if src:
            check_classifier_source(key, src, catalog)


def installed_models(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Catalog detectors and classifiers that are installed and servable (``GET /v1/models``)."""
    from sleuth.engine import catalog as cat

    out = []
    for e in _catalog().values():
        if e.task in (*DETECTOR_TASKS, *CLASSIFIER_TASKS) and e.servable and cat.status(e, settings) == "installed":
            kind = "classifier" if e.task in CLASSIFIER_TASKS else "detector"
            out.append({"name": e.name, "version": e.version, "kind": kind, "description": e.description})
    return out
