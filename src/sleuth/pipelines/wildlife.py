"""Wildlife ensemble: detector boxes + per-box classifier top-k -> Animal Detect-style annotations.

Pure logic between the models (no I/O, no model code). The flow, per image::

    detect -> person/vehicle relabel -> crop every box over threshold -> classify crops in batches
    -> per box: SpeciesNet ensemble rules (human / vehicle / blank / species / roll-up) with geofence
    -> smooth_herd -> threshold on the final score -> annotations (sorted by score, ids 0..n-1)

The rules and thresholds are SpeciesNet's (google/cameratrapai ``ensemble_prediction_combiner.py`` and
``geofence_utils.py``), applied to every box instead of only the top one; every adaptation is listed in
``docs/wildlife-pipeline.md``. ``Annotation.source`` records which rule produced each label, with
SpeciesNet's ``prediction_source`` names (``detector``, ``classifier``, ``classifier+rollup_to_genus``,
``classifier+geofence+rollup_to_family``, ...) plus ours (``...+smooth_herd``, ``detector_fallback``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sleuth.pipelines import geo
from sleuth.pipelines.taxonomy import (
    ANIMAL,
    HUMAN,
    VEHICLE,
    Label,
    Taxonomy,
    common_name,
    parse_label,
    taxonomy_dict,
)

__all__ = [
    "CATEGORY_ANIMAL",
    "CATEGORY_PERSON",
    "CATEGORY_VEHICLE",
    "Annotation",
    "Candidate",
    "Classifier",
    "Detection",
    "Detector",
    "Geofence",
    "ImageOptions",
    "NoRangeData",
    "Relabeler",
    "crop_box",
    "ensemble_image",
    "geofence_applied",
    "run_pipeline",
    "species_for_country",
]

CATEGORY_ANIMAL = 1
CATEGORY_PERSON = 2
CATEGORY_VEHICLE = 3
_COARSE = {CATEGORY_ANIMAL: ANIMAL, CATEGORY_PERSON: HUMAN, CATEGORY_VEHICLE: VEHICLE}
_COARSE_NAME = {CATEGORY_ANIMAL: "animal", CATEGORY_PERSON: "human", CATEGORY_VEHICLE: "vehicle"}

# SpeciesNet ensemble thresholds (ensemble_prediction_combiner.py).
HUMAN_DET_HIGH = 0.7  # 1a
DET_MID = 0.2  # 1b, 2a, 2c, 3a, 4b
CLS_HUMAN = 0.5  # 1b, 2a
VEHICLE_DET_HIGH = 0.7  # 2b
CLS_VEHICLE = 0.4  # 2c
CLS_BLANK = 0.5  # 3a
CLS_BLANK_HIGH = 0.99  # 3b
CLS_ANIMAL_HIGH = 0.8  # 4a
CLS_ANIMAL_MID = 0.65  # 4b
ROLLUP_THRESHOLD = 0.65  # 5a (non_blank_threshold)
ANIMAL_DET = 0.5  # 5b
RULES_TOP_K = 5  # SpeciesNet keeps the top 5 classes; rules and roll-ups use only these
ROLLUP_LEVELS = ("genus", "family", "order", "class", "kingdom")
GEOFENCE_ROLLUP_LEVELS = ("family", "order", "class", "kingdom")


# --------------------------------------------------------------------------------------------------
# data types


@dataclass
class Detection:
    """One detector box: MegaDetector category (1 animal, 2 person, 3 vehicle), confidence, and the box
    normalised to the (EXIF-upright) image as ``[x_min, y_min, width, height]``."""

    category: int
    conf: float
    bbox: list[float]

    def __post_init__(self) -> None:
        if isinstance(self.category, bool) or self.category not in _COARSE:
            raise ValueError(f"detection category must be 1 (animal), 2 (person) or 3 (vehicle): {self.category!r}")
        conf = float(self.conf)
        if not (math.isfinite(conf) and 0.0 <= conf <= 1.0):
            raise ValueError(f"detection confidence must be within [0, 1], got {self.conf!r}")
        self.conf = conf
        if len(self.bbox) != 4:
            raise ValueError(f"bbox must be [x, y, w, h], got {self.bbox!r}")
        box = [float(v) for v in self.bbox]
        if not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
            raise ValueError(f"bbox must be 4 finite numbers with w, h >= 0, got {self.bbox!r}")
        self.bbox = box

    @classmethod
    def coerce(cls, obj: Any) -> Detection:
        """Accept a :class:`Detection`, any object with ``category``/``conf``/``bbox`` attributes (e.g.
        ``sleuth.models.detection.Detection``, whose category is the string ``"1"``), or a MegaDetector
        dict ``{"category": "1", "conf": 0.9, "bbox": [...]}``."""
        if isinstance(obj, Detection):
            return obj
        if isinstance(obj, Mapping):
            category, conf, bbox = obj.get("category"), obj.get("conf"), obj.get("bbox")
        else:
            category, conf, bbox = (getattr(obj, k, None) for k in ("category", "conf", "bbox"))
        if category is None or conf is None or bbox is None:
            raise ValueError(f"not a detection (needs category, conf, bbox): {obj!r}")
        try:
            cat = int(category)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"detection category must be 1, 2 or 3, got {category!r}") from exc
        return cls(category=cat, conf=float(conf), bbox=list(bbox))


def _coerce_image_dets(result: Any) -> list[Detection]:
    """One image's detector output: a sequence of detections or an object with ``.detections``."""
    items = getattr(result, "detections", result)
    if items is None:
        raise ValueError("detector returned None for an image")
    return [Detection.coerce(d) for d in items]


@dataclass
class Candidate:
    """One ranked alternative (``top_candidates`` entry)."""

    label: str
    score: float
    taxonomy: dict[str, str]
    label_string: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "taxonomy": dict(self.taxonomy)}


@dataclass
class Annotation:
    """One output box. ``to_dict()`` gives the Animal Detect annotation object."""

    id: int
    bbox: list[float]
    score: float
    label: str
    taxonomy: dict[str, str]
    top_candidates: list[Candidate] | None = None
    label_string: str = ""  # the SpeciesNet 7-field label of ``label``
    source: str = ""  # which rule produced it (SpeciesNet prediction_source names)
    category: int = CATEGORY_ANIMAL  # detector category after relabelling
    detection_conf: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "bbox": list(self.bbox),
            "score": self.score,
            "label": self.label,
            "taxonomy": dict(self.taxonomy),
        }
        if self.top_candidates is not None:
            out["top_candidates"] = [c.to_dict() for c in self.top_candidates]
        return out


@dataclass(frozen=True)
class ImageOptions:
    """Per-request options. ``country`` accepts CCA2/CCA3/name and is stored as CCA3; ``admin1`` accepts
    ``"US-CA"``/``"CA"``/``"California"`` (needs ``country``) and is stored as ISO 3166-2."""

    threshold: float = 0.2
    classify: bool = True
    country: str | None = None
    admin1: str | None = None
    smooth_herd: bool = False
    top_candidate: int | None = None

    def __post_init__(self) -> None:
        try:
            threshold = float(self.threshold)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"threshold must be a number, got {self.threshold!r}") from exc
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold!r}")
        object.__setattr__(self, "threshold", threshold)
        if self.top_candidate is not None and (
            isinstance(self.top_candidate, bool)
            or not isinstance(self.top_candidate, int)
            or not 1 <= self.top_candidate <= 10
        ):
            raise ValueError(f"top_candidate must be an integer from 1 to 10, got {self.top_candidate!r}")
        if self.country is not None:
            object.__setattr__(self, "country", geo.resolve_country(self.country))
        if self.admin1 is not None:
            if self.country is None:
                raise ValueError("admin1 needs a country")
            object.__setattr__(self, "admin1", geo.resolve_admin1(self.country, self.admin1))


# --------------------------------------------------------------------------------------------------
# geofence


class NoRangeData(LookupError):
    """The classifier pack has no range (geofence) data, so per-country answers cannot be given."""


GeofenceRules = Mapping[str, Any]  # full class string -> {"allow"|"block": {CCA3: [state, ...]}}


class Geofence:
    """SpeciesNet geofence map (``geofence_release.json``): full class string ->
    ``{"allow": {CCA3: [admin1, ...]}, "block": {CCA3: [admin1, ...]}}``; admin1 codes are SpeciesNet's
    2-letter US state codes (``"CA"``); an empty list means the whole country.

    A label is geofenced (not allowed) in a country when its entry has an allow list that lacks the country
    (or lists states and lacks the given state), or a block list naming the country (whole country, or the
    given state). Labels without an entry, and requests without a country, are never geofenced.
    """

    def __init__(self, rules: GeofenceRules | None) -> None:
        self.rules: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
        for fcs, entry in (rules or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"geofence entry for {fcs!r} must be an object")
            parsed: dict[str, dict[str, frozenset[str]]] = {}
            for kind in ("allow", "block"):
                countries = entry.get(kind)
                if countries:
                    parsed[kind] = {
                        str(c).upper(): frozenset(str(a).upper() for a in (r or ())) for c, r in countries.items()
                    }
            self.rules[fcs.lower()] = parsed

    @classmethod
    def from_json(cls, path: str | Path) -> Geofence:
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    @property
    def has_range_data(self) -> bool:
        return bool(self.rules)

    def is_blocked(self, label: Label | str, country: str | None, admin1: str | None = None) -> bool:
        if not country:
            return False
        lab = label if isinstance(label, Label) else parse_label(label)
        entry = self.rules.get(lab.full_class_string)
        if not entry:
            return False
        state = geo.speciesnet_admin1(admin1)
        state = state.upper() if state else None
        allow = entry.get("allow")
        if allow:
            if country not in allow:
                return True
            if state and allow[country] and state not in allow[country]:
                return True
        block = entry.get("block")
        if block and country in block:
            if not block[country]:
                return True
            if state and state in block[country]:
                return True
        return False

    def is_known_present(self, label: Label, country: str, admin1: str | None = None) -> bool:
        """Positive range evidence: an allow list naming the country, and not geofenced there."""
        entry = self.rules.get(label.full_class_string)
        return bool(entry and country in entry.get("allow", {})) and not self.is_blocked(label, country, admin1)


def _as_geofence(geofence: Geofence | GeofenceRules | None) -> Geofence | None:
    if geofence is None or isinstance(geofence, Geofence):
        return geofence
    return Geofence(geofence)


def geofence_applied(geofence: Geofence | GeofenceRules | None, options: ImageOptions) -> bool:
    """Whether ``country`` actually restricts labels: a country was given and the pack has range data.
    The API echoes ``country`` either way; this tells it whether to say geofencing was applied."""
    gf = _as_geofence(geofence)
    return bool(options.country and options.classify and gf is not None and gf.has_range_data)


def species_for_country(
    pack_geofence: Geofence | GeofenceRules | None,
    labels: Sequence[str],
    cca3: str,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Species of the pack (``labels``) known to occur in a country, from the pack's geofence data only.

    A species is listed when its geofence entry has an allow list naming the country and it is not blocked
    there; species without range data are not listed (no guessing). Sorted by common name then id.
    Returns ``{"country", "total", "limit", "offset", "species": [{"label", "taxonomy"}]}``.
    Raises ``NoRangeData`` when the pack has no geofence data, ``ValueError`` for an unknown country or a
    bad limit (1..100) / offset (>= 0).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValueError(f"limit must be an integer from 1 to 100, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    country = geo.resolve_country(cca3)
    gf = _as_geofence(pack_geofence)
    if gf is None or not gf.has_range_data:
        raise NoRangeData("the classifier pack has no range (geofence) data; cannot list species by country")
    seen: set[str] = set()
    found: list[Label] = []
    for text in labels:
        lab = parse_label(text)
        if lab.rank != "species" or lab.full_class_string in seen:
            continue
        seen.add(lab.full_class_string)
        if gf.is_known_present(lab, country):
            found.append(lab)
    found.sort(key=lambda lab: (common_name(lab), lab.id))
    page = found[offset : offset + limit]
    return {
        "country": country,
        "total": len(found),
        "limit": limit,
        "offset": offset,
        "species": [{"label": common_name(lab), "taxonomy": taxonomy_dict(lab)} for lab in page],
    }


# --------------------------------------------------------------------------------------------------
# ensemble


@dataclass
class _Context:
    taxonomy: Taxonomy
    geofence: Geofence | None
    country: str | None
    admin1: str | None

    def blocked(self, label: Label) -> bool:
        return self.geofence is not None and self.geofence.is_blocked(label, self.country, self.admin1)


Prediction = tuple[Label, float, str]


def _parse_classes(raw: Sequence[tuple[str, float]] | None) -> list[tuple[Label, float]]:
    out: list[tuple[Label, float]] = []
    for item in raw or ():
        if len(item) != 2:
            raise ValueError(f"a classification must be (label, score), got {item!r}")
        text, score = item
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"classification score must be finite, got {score!r} for {text!r}")
        out.append((parse_label(text), s))
    out.sort(key=lambda ls: -ls[1])  # stable: ties keep the classifier's order
    return out


def _rollup(
    classes: list[tuple[Label, float]], levels: Sequence[str], threshold: float, ctx: _Context
) -> Prediction | None:
    """SpeciesNet roll-up: per level, sum scores of labels sharing an ancestor; the best ancestor that is
    not geofenced wins if its sum passes ``threshold``."""
    for level in levels:
        sums: dict[str, float] = {}
        by_fcs: dict[str, Label] = {}
        for lab, score in classes:
            anc = ctx.taxonomy.ancestor(lab, level)
            if anc is None:
                continue
            key = anc.full_class_string
            sums[key] = sums.get(key, 0.0) + score
            by_fcs.setdefault(key, anc)
        best: Label | None = None
        best_score = 0.0
        for key, total in sums.items():
            if total > best_score and not ctx.blocked(by_fcs[key]):
                best, best_score = by_fcs[key], total
        if best is not None and best_score > threshold:
            return best, best_score, f"classifier+rollup_to_{level}"
    return None


def _geofence_top(classes: list[tuple[Label, float]], ctx: _Context) -> Prediction | None:
    top, score = classes[0]
    if not ctx.blocked(top):
        return top, score, "classifier"
    rolled = _rollup(classes, GEOFENCE_ROLLUP_LEVELS, score - 1e-10, ctx)
    if rolled is None:
        return None
    label, total, source = rolled
    return label, total, "classifier+geofence+" + source[len("classifier+") :]


def _combine_box(det: Detection, classes: list[tuple[Label, float]], ctx: _Context) -> Prediction | None:
    """SpeciesNet's rules for one box. Returns None when the box is blank (dropped)."""
    conf, cat = det.conf, det.category
    top: Label | None = classes[0][0] if classes else None
    ts = classes[0][1] if classes else 0.0
    human = top is not None and top.is_human
    vehicle = top is not None and top.is_vehicle
    blank = top is not None and top.is_blank

    if cat == CATEGORY_PERSON:
        if conf > HUMAN_DET_HIGH:  # 1a
            return parse_label(HUMAN), conf, "detector"
        if conf > DET_MID and (human or vehicle) and ts > CLS_HUMAN:  # 1b
            return parse_label(HUMAN), ts, "classifier"
    if cat == CATEGORY_VEHICLE:
        if conf > DET_MID and human and ts > CLS_HUMAN:  # 2a
            return parse_label(HUMAN), ts, "classifier"
        if conf > VEHICLE_DET_HIGH:  # 2b
            return parse_label(VEHICLE), conf, "detector"
        if conf > DET_MID and vehicle and ts > CLS_VEHICLE:  # 2c
            return parse_label(VEHICLE), ts, "classifier"
    # adaptation A1: a box of an animal-only detector that the classifier calls human/vehicle
    if cat == CATEGORY_ANIMAL:
        if conf > DET_MID and human and ts > CLS_HUMAN:
            return parse_label(HUMAN), ts, "classifier"
        if conf > DET_MID and vehicle and ts > CLS_VEHICLE:
            return parse_label(VEHICLE), ts, "classifier"

    if blank and ((conf < DET_MID and ts > CLS_BLANK) or ts > CLS_BLANK_HIGH):  # 3a, 3b
        return None
    animal_top = top is not None and top.is_taxon and not top.is_human
    # 4a: very confident animal classification; 4b: confident classification of an animal box
    if animal_top and (ts > CLS_ANIMAL_HIGH or (ts > CLS_ANIMAL_MID and cat == CATEGORY_ANIMAL and conf > DET_MID)):
        pred = _geofence_top(classes, ctx)
        if pred is not None:
            return pred
    rolled = _rollup(classes, ROLLUP_LEVELS, ROLLUP_THRESHOLD, ctx)  # 5a
    if rolled is not None:
        return rolled
    if cat == CATEGORY_ANIMAL and conf > ANIMAL_DET:  # 5b
        return parse_label(ANIMAL), conf, "detector"
    # adaptation A3: SpeciesNet would answer "unknown"; a box over threshold keeps its detector label
    return parse_label(_COARSE[cat]), conf, "detector_fallback"


def _candidates(classes: list[tuple[Label, float]], chosen: Label, n: int, ctx: _Context) -> list[Candidate]:
    out: list[Candidate] = []
    for lab, score in classes:
        if len(out) >= n:
            break
        if not (lab.is_taxon or lab.is_vehicle) or lab.full_class_string == chosen.full_class_string:
            continue
        if lab.is_vehicle and chosen.is_vehicle:
            continue
        if ctx.blocked(lab):
            continue
        out.append(Candidate(common_name(lab), score, taxonomy_dict(lab), lab.string))
    return out


def _smooth_herd(anns: list[Annotation], taxonomy: Taxonomy, threshold: float) -> None:
    """Broad animal labels (genus .. kingdom) take the most precise label found in the same image that lies
    below them in the taxonomy (donors must pass the threshold themselves)."""
    labels = [parse_label(a.label_string) for a in anns]
    donors = [
        (lab, a)
        for lab, a in zip(labels, anns, strict=True)
        if lab.is_taxon and not lab.is_human and a.score >= threshold
    ]
    order = {"species": 0, "genus": 1, "family": 2, "order": 3, "class": 4, "kingdom": 5}
    for lab, ann in zip(labels, anns, strict=True):
        if not lab.is_taxon or lab.is_human or lab.rank in ("species",):
            continue
        fits = [(d, da) for d, da in donors if taxonomy.is_descendant(d, lab)]
        if not fits:
            continue
        counts: dict[str, int] = {}
        best_score: dict[str, float] = {}
        pick: dict[str, Label] = {}
        for d, da in fits:
            counts[d.full_class_string] = counts.get(d.full_class_string, 0) + 1
            best_score[d.full_class_string] = max(best_score.get(d.full_class_string, 0.0), da.score)
            pick.setdefault(d.full_class_string, d)
        key = min(pick, key=lambda k: (order[pick[k].rank], -counts[k], -best_score[k], k))
        new = pick[key]
        ann.label, ann.taxonomy, ann.label_string = common_name(new), taxonomy_dict(new), new.string
        ann.source += "+smooth_herd"


def ensemble_image(
    detections: Sequence[Detection],
    classifications_per_box: Sequence[Sequence[tuple[str, float]] | None],
    options: ImageOptions,
    geofence: Geofence | GeofenceRules | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[Annotation]:
    """Annotations for one image.

    ``classifications_per_box[i]`` is box ``i``'s classifier top-k as ``(label_string, score)`` pairs (any
    order; None or empty when not classified). Only boxes whose detector confidence reaches
    ``options.threshold`` are considered; each gets the SpeciesNet rules; blank boxes are dropped; the
    result keeps annotations whose final score reaches the threshold, sorted by score (ids 0..n-1).
    ``taxonomy`` supplies roll-up labels (defaults to one built from the labels seen here).
    """
    if len(classifications_per_box) not in (0, len(detections)):
        raise ValueError(f"got {len(classifications_per_box)} classification lists for {len(detections)} detections")
    detections = [Detection.coerce(d) for d in detections]
    gf = _as_geofence(geofence)
    per_box = [
        _parse_classes(classifications_per_box[i] if classifications_per_box else None) for i in range(len(detections))
    ]
    if taxonomy is None:
        taxonomy = Taxonomy(lab.string for classes in per_box for lab, _ in classes)
    ctx = _Context(taxonomy, gf, options.country if options.classify else None, options.admin1)

    anns: list[Annotation] = []
    for det, classes in zip(detections, per_box, strict=True):
        if det.conf < options.threshold:
            continue
        if not options.classify:
            coarse = parse_label(_COARSE[det.category])
            anns.append(
                Annotation(
                    id=0,
                    bbox=list(det.bbox),
                    score=det.conf,
                    label=_COARSE_NAME[det.category],
                    taxonomy=taxonomy_dict(coarse),
                    label_string=coarse.string,
                    source="detector",
                    category=det.category,
                    detection_conf=det.conf,
                )
            )
            continue
        pred = _combine_box(det, classes[:RULES_TOP_K], ctx)
        if pred is None:
            continue
        label, score, source = pred
        cands = None
        if options.top_candidate is not None:
            cands = _candidates(classes, label, options.top_candidate, ctx)
        anns.append(
            Annotation(
                id=0,
                bbox=list(det.bbox),
                score=float(score),
                label=common_name(label),
                taxonomy=taxonomy_dict(label),
                top_candidates=cands,
                label_string=label.string,
                source=source,
                category=det.category,
                detection_conf=det.conf,
            )
        )
    if options.classify and options.smooth_herd:
        _smooth_herd(anns, taxonomy, options.threshold)
    anns = [a for a in anns if a.score >= options.threshold]
    anns.sort(key=lambda a: -a.score)
    for i, a in enumerate(anns):
        a.id = i
    return anns


# --------------------------------------------------------------------------------------------------
# driver


class Detector(Protocol):
    """``detector(images) -> one list of Detection per image`` (e.g. a ``sleuth.engine.base.Model``)."""

    def __call__(self, images: Sequence[Any], /) -> Sequence[Sequence[Detection]]: ...


class Relabeler(Protocol):
    """``relabeler(images, detections) -> detections`` (e.g. mark boxes that a COCO detector sees as a
    person/vehicle as category 2/3, or add such boxes)."""

    def __call__(
        self, images: Sequence[Any], detections: Sequence[Sequence[Detection]], /
    ) -> Sequence[Sequence[Detection]]: ...


class Classifier(Protocol):
    """``classifier(crops) -> per crop a top-k list of (SpeciesNet label string, score)``."""

    def __call__(self, crops: Sequence[Any], /) -> Sequence[Sequence[tuple[str, float]]]: ...


def _pixels(image: Any) -> np.ndarray:
    arr: np.ndarray | None = None
    if isinstance(image, np.ndarray):
        arr = image
    else:
        for attr in ("array", "pixels", "rgb"):
            value = getattr(image, attr, None)
            if isinstance(value, np.ndarray):
                arr = value
                break
        if arr is None:
            try:
                from PIL import Image

                if isinstance(image, Image.Image):
                    arr = np.asarray(image.convert("RGB"))
            except ImportError:  # pragma: no cover - pillow is a dependency
                pass
        if arr is None:
            raise ValueError(f"cannot crop an image of type {type(image).__name__}: expected an HxWxC array")
    if arr is None:  # pragma: no cover - unreachable, for the type checker
        raise ValueError("no image array")
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image must be a non-empty HxW or HxWxC array, got shape {arr.shape}")
    return arr


def crop_box(image: Any, bbox: Sequence[float]) -> np.ndarray:
    """Crop a normalised ``[x, y, w, h]`` box from an HxW(xC) array (or an object with an ``array``/
    ``pixels``/``rgb`` array attribute, or a PIL image). The box is clamped to the image; at least 1x1."""
    arr = _pixels(image)
    h, w = arr.shape[:2]
    x, y, bw, bh = (float(v) for v in bbox)
    x0 = min(max(int(math.floor(x * w)), 0), w - 1)
    y0 = min(max(int(math.floor(y * h)), 0), h - 1)
    x1 = min(max(int(math.ceil((x + bw) * w)), x0 + 1), w)
    y1 = min(max(int(math.ceil((y + bh) * h)), y0 + 1), h)
    return arr[y0:y1, x0:x1]


def run_pipeline(
    images: Sequence[Any],
    detector: Detector | Callable[[Sequence[Any]], Sequence[Any]],
    relabeler: Relabeler | Callable[..., Sequence[Any]] | None,
    classifier: Classifier | Callable[[Sequence[Any]], Sequence[Sequence[tuple[str, float]]]] | Any | None,
    options: ImageOptions,
    *,
    geofence: Geofence | GeofenceRules | None = None,
    taxonomy: Taxonomy | None = None,
    cropper: Callable[[Any, Sequence[float]], Any] = crop_box,
    batch_size: int = 16,
) -> list[list[Annotation]]:
    """Run detect -> relabel -> crop -> classify (batched across images) -> ensemble for a batch.

    Only boxes whose detector confidence reaches ``options.threshold`` are cropped and classified (no
    classifier call at all with ``classify=False`` or ``classifier=None``). Returns one annotation list
    per image, in input order.

    ``detector`` / ``relabeler`` may return, per image, a list of detections (:class:`Detection`, objects
    with ``category``/``conf``/``bbox``, or MD dicts) or an object with ``.detections`` (e.g.
    ``sleuth.models.detection.DetectionResult``). ``classifier`` is a callable ``crops -> top-k lists`` or a
    classifier pack with ``classify(crops, top_k)``; a pack's ``taxonomy_release`` and ``labels`` seed the
    roll-up taxonomy and its
    ``geofence`` is used when ``has_range_data`` (unless ``taxonomy``/``geofence`` are given).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dets = [_coerce_image_dets(r) for r in detector(images)]
    if len(dets) != len(images):
        raise ValueError(f"detector returned {len(dets)} results for {len(images)} images")
    if relabeler is not None:
        dets = [_coerce_image_dets(r) for r in relabeler(images, dets)]
        if len(dets) != len(images):
            raise ValueError(f"relabeler returned {len(dets)} results for {len(images)} images")
    if taxonomy is None and classifier is not None:
        # Roll-up names come from the pack: its taxonomy release, and its classifier labels unless the
        # pack says they do not name higher taxa (``labels_name_taxa = False``: the Coral pack, whose
        # WordNet-derived labels leave genus/species empty where WordNet has none, so "dingo" would look
        # like the family canidae). Taxa with no pack label get synthesised names ("canidae family").
        pack_labels = list(getattr(classifier, "taxonomy_release", None) or [])
        if getattr(classifier, "labels_name_taxa", True):
            pack_labels += list(getattr(classifier, "labels", None) or [])
        if pack_labels:
            taxonomy = Taxonomy(pack_labels)
    if geofence is None and classifier is not None and getattr(classifier, "has_range_data", False):
        geofence = getattr(classifier, "geofence", None)

    classify_fn: Callable[[Sequence[Any]], Sequence[Sequence[tuple[str, float]]]] | None = None
    if classifier is not None and callable(getattr(classifier, "classify", None)):
        top_k = max(RULES_TOP_K, (options.top_candidate or 0) + 1)
        pack = classifier

        def classify_fn(crops: Sequence[Any]) -> Sequence[Sequence[tuple[str, float]]]:
            return pack.classify(crops, top_k)  # type: ignore[union-attr]

    elif classifier is not None:
        classify_fn = classifier

    classes: list[list[list[tuple[str, float]] | None]] = [[None] * len(d) for d in dets]
    if options.classify and classify_fn is not None:
        jobs = [
            (i, j) for i, per_image in enumerate(dets) for j, d in enumerate(per_image) if d.conf >= options.threshold
        ]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            crops = [cropper(images[i], dets[i][j].bbox) for i, j in chunk]
            results = list(classify_fn(crops))
            if len(results) != len(chunk):
                raise ValueError(f"classifier returned {len(results)} results for {len(chunk)} crops")
            for (i, j), res in zip(chunk, results, strict=True):
                classes[i][j] = [(str(lab), float(sc)) for lab, sc in res]
    return [
        ensemble_image(d, c, options, geofence=geofence, taxonomy=taxonomy) for d, c in zip(dets, classes, strict=True)
    ]
