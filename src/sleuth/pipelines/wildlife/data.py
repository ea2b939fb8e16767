"""The wildlife pipeline's data types: detector boxes, annotations, ranked candidates and request options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sleuth.pipelines import geo
from sleuth.pipelines.taxonomy import ANIMAL, HUMAN, VEHICLE

CATEGORY_ANIMAL = 1
CATEGORY_PERSON = 2
CATEGORY_VEHICLE = 3
_COARSE = {CATEGORY_ANIMAL: ANIMAL, CATEGORY_PERSON: HUMAN, CATEGORY_VEHICLE: VEHICLE}
_COARSE_NAME = {CATEGORY_ANIMAL: "animal", CATEGORY_PERSON: "human", CATEGORY_VEHICLE: "vehicle"}


@dataclass
class Detection:
    """One detector box: MegaDetector category (1 animal, 2 person, 3 vehicle), confidence, and the box
    normalised to the (EXIF-upright) image as ``[x_min, y_min, width, height]``. ``hint``: what a second
    detector says the object is (``"mammal"``, ``"bird"``, ``"person"``, ``"vehicle"``; None = nothing), for
    the pack's label policy (``label_policy.py``)."""

    category: int
    conf: float
    bbox: list[float]
    hint: str | None = None

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
            category, conf, bbox, hint = obj.get("category"), obj.get("conf"), obj.get("bbox"), obj.get("hint")
        else:
            category, conf, bbox, hint = (getattr(obj, k, None) for k in ("category", "conf", "bbox", "hint"))
        if category is None or conf is None or bbox is None:
            raise ValueError(f"not a detection (needs category, conf, bbox): {obj!r}")
        try:
            cat = int(category)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"detection category must be 1, 2 or 3, got {category!r}") from exc
        return cls(category=cat, conf=float(conf), bbox=list(bbox), hint=hint if isinstance(hint, str) else None)


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
