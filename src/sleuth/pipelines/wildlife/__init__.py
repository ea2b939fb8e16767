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

from sleuth.pipelines.wildlife.data import (
    CATEGORY_ANIMAL,
    CATEGORY_PERSON,
    CATEGORY_VEHICLE,
    Annotation,
    Candidate,
    Detection,
    ImageOptions,
)
from sleuth.pipelines.wildlife.driver import Classifier, Detector, Relabeler, crop_box, run_pipeline
from sleuth.pipelines.wildlife.ensemble import ensemble_image
from sleuth.pipelines.wildlife.geofence import (
    Geofence,
    GeofenceRules,
    NoRangeData,
    geofence_applied,
    species_for_country,
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
    "GeofenceRules",
    "ImageOptions",
    "NoRangeData",
    "Relabeler",
    "crop_box",
    "ensemble_image",
    "geofence_applied",
    "run_pipeline",
    "species_for_country",
]
