"""The wildlife driver: detect -> relabel -> crop -> classify in batches -> ensemble, for a batch of images."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from sleuth.pipelines.taxonomy import Taxonomy
from sleuth.pipelines.wildlife.data import Annotation, Detection, ImageOptions
from sleuth.pipelines.wildlife.ensemble import classes_wanted, ensemble_image
from sleuth.pipelines.wildlife.geofence import Geofence, GeofenceRules
from sleuth.pipelines.wildlife.label_policy import LabelPolicy, policy_named

PACK_POLICY: Any = object()  # run_pipeline(label_policy=...) default: the classifier pack's own


def _coerce_image_dets(result: Any) -> list[Detection]:
    """One image's detector output: a sequence of detections or an object with ``.detections``."""
    items = getattr(result, "detections", result)
    if items is None:
        raise ValueError("detector returned None for an image")
    return [Detection.coerce(d) for d in items]


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
    label_policy: LabelPolicy | None | object = PACK_POLICY,
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
    ``geofence`` is used when ``has_range_data`` (unless ``taxonomy``/``geofence`` are given); its
    ``label_policy`` (if any) applies unless ``label_policy`` is given (None: no policy).
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
        if pack_labels or not getattr(classifier, "labels_name_taxa", True):
            taxonomy = Taxonomy(pack_labels)  # (empty for Coral: every ancestor gets its synthesised name)
    if geofence is None and classifier is not None and getattr(classifier, "has_range_data", False):
        geofence = getattr(classifier, "geofence", None)

    classify_fn: Callable[[Sequence[Any]], Sequence[Sequence[tuple[str, float]]]] | None = None
    if classifier is not None and callable(getattr(classifier, "classify", None)):
        top_k = classes_wanted(options.top_candidate)
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
    policy = getattr(classifier, "label_policy", None) if label_policy is PACK_POLICY else label_policy
    if isinstance(policy, str):  # a pack names its policy file (models do not import the pipeline)
        policy = policy_named(policy)
    if policy is not None and not isinstance(policy, LabelPolicy):
        raise ValueError(f"label_policy must be a LabelPolicy, a policy name or None, got {type(policy).__name__}")
    return [
        ensemble_image(d, c, options, geofence=geofence, taxonomy=taxonomy, policy=policy)
        for d, c in zip(dets, classes, strict=True)
    ]
