"""Wildlife detection service: profiles, the model path for a batch of images, API-shaped results.

The pure logic lives in ``pipelines.wildlife`` (ensemble, roll-up, geofence) and
``media.images`` (decode); this module decides which models a profile uses, runs
them through the per-model micro-batchers (so sync requests and job items share one
batcher, interactive lane first) and shapes Animal Detect's result objects.

Per image: decode once (DCT-reduced, EXIF upright) -> detector -> person/vehicle relabel
(YOLOX-nano COCO boxes fused with MD-Lite's, default profile) -> every box over the
threshold cropped and classified in one batch -> ensemble -> annotations.
A bad image fails only itself (``ImageOutcome.error``); the others go on.

Interactive first, also outside the batchers: the batchers' lanes only reorder *queued*
items, but a job item's decode, crop/classify and a running job batch compete with a sync
request for the CPU. So a job-lane ``run_images`` first yields to sync requests in this
process (:class:`InteractiveGate`): it starts only once no sync request has been running for
``JOB_YIELD_GRACE_S``, and waits at most ``JOB_YIELD_MAX_S`` (jobs keep draining under a
constant sync load). A job item already running is not interrupted. Inside the process's compute gate
(``engine.compute``) a sync ``run_images`` is an ``interactive_request``: no job-priority model run (job items,
deepfake analyses) starts while it runs, but a starved one every ``compute_max_starve_s``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sleuth.engine.compute import compute_gate
from sleuth.engine.registry import get_batcher, get_model
from sleuth.engine.threads import at_normal_priority, eager_pool
from sleuth.media.images import DecodedImage, decode_image
from sleuth.models.detection import clip_boxes
from sleuth.models.score_map import ScoreMap, map_detections, score_map_of
from sleuth.pipelines.wildlife import Annotation, ImageOptions, run_pipeline
from sleuth.pipelines.wildlife.infobar import MAX_FRACTION, find_info_bars, in_info_bar

# Decode no larger than the detector and the classifier crops need: a 1280-px long side keeps
# 224-px crops of boxes down to ~1/6 of the frame at full classifier resolution.
DECODE_MAX_SIDE = 1280
COARSE = {1: "animal", 2: "human", 3: "vehicle"}


@dataclass(frozen=True)
class Profile:
    name: str
    detector: str  # catalog name of the primary detector
    relabeler: str | None  # COCO detector used to label person/vehicle boxes
    classifier: str | None  # classifier pack ("coral" = Coral ImageNet + iNat birds)
    model_id: str
    model_version: str
    description: str

    def detector_only(self) -> Profile:
        return Profile(
            self.name + "-filter",
            self.detector,
            self.relabeler,
            None,
            self.model_id.rsplit("-", 1)[0] + "-filter",
            self.model_version.split("+")[0],
            self.description + " (detector only)",
        )


PROFILES: dict[str, Profile] = {
    "default": Profile(
        "default",
        "mdlite",
        "yolox-nano-coco",
        "coral",
        "mdlite-coral",
        "mdlite-2022.05.28-int8+coral-mobilenetv2",
        "Camera-trap wildlife: Zamba MegadetectorLite (YOLOX-tiny) + YOLOX-nano person/vehicle relabel + "
        "Coral MobileNetV2 ImageNet/iNat-birds classifier with a WordNet taxonomy",
    ),
    "urban": Profile(
        "urban",
        "yolox-nano-coco",
        None,
        "coral",
        "yolox-nano-coral",
        "yolox-nano-coco+coral-mobilenetv2",
        "Urban, indoor, roadside, zoo and farm scenes: YOLOX-nano COCO detector + Coral classifier",
    ),
}


@dataclass
class ImageInput:
    filename: str
    data: bytes


@dataclass
class ImageOutcome:
    index: int
    filename: str
    file_size: int
    annotations: list[Annotation] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)  # filter endpoints
    error: tuple[str, str] | None = None  # (code, message)
    width: int | None = None
    height: int | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    processing_time_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


# A job item waits until sync requests have been idle this long (covers the gap between a
# client's back-to-back requests), but never longer than JOB_YIELD_MAX_S in all.
JOB_YIELD_GRACE_S = 0.1
JOB_YIELD_MAX_S = 2.0


class InteractiveGate:
    """Counts running sync (interactive) requests; job items yield to them before starting."""

    def __init__(self, grace_s: float = JOB_YIELD_GRACE_S, max_wait_s: float = JOB_YIELD_MAX_S) -> None:
        self.grace_s = grace_s
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._active = 0
        self._last_end = float("-inf")

    @property
    def active(self) -> int:
        with self._cond:
            return self._active

    @contextmanager
    def interactive(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._last_end = time.monotonic()
                self._cond.notify_all()

    def yield_to_interactive(self) -> float:
        """Wait while sync requests run (plus ``grace_s``), at most ``max_wait_s``; returns the seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + self.max_wait_s
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if self._active == 0:
                    quiet = now - self._last_end
                    if quiet >= self.grace_s:
                        break
                    self._cond.wait(min(self.grace_s - quiet, deadline - now))
                else:
                    self._cond.wait(deadline - now)
        return time.monotonic() - t0


interactive_gate = InteractiveGate()

_pack_lock = threading.Lock()
_packs: dict[str, Any] = {}
MAX_TOP_K = 25  # the most classes the pipeline reads (ensemble.CANDIDATE_POOL, for top_candidate)


class BatchedPack:
    """A classifier pack behind its own micro-batcher, with the pack's interface.

    Crops from sync requests and from job items share one batcher per process (interactive lane
    first, bounded queue), like the detectors; ``lane`` picks the lane for this caller.
    """

    def __init__(self, pack: Any, batcher: Any, lane: str = "interactive") -> None:
        self._pack, self._batcher, self.lane = pack, batcher, lane

    def __getattr__(self, name: str) -> Any:  # labels, taxonomy_release, geofence, has_range_data, ...
        return getattr(self._pack, name)

    def with_lane(self, lane: str) -> BatchedPack:
        return BatchedPack(self._pack, self._batcher, lane)

    def classify(self, crops: Sequence[Any], top_k: int = 5) -> list[Any]:
        if top_k > MAX_TOP_K:
            raise ValueError(f"top_k must be at most {MAX_TOP_K}")
        preds = self._batcher.run(list(crops), self.lane)
        return [p[:top_k] for p in preds]


def configured_classifier(profile: str = "default") -> str:
    """The classifier source a profile uses: ``coral``, a catalog SpeciesNet name, or a model folder."""
    from sleuth.services.model_selection import selected
    from sleuth.settings import get_settings

    return selected(get_settings(), profile, False)[1] or "coral"


def classifier_pack(name: str) -> BatchedPack:
    """A process-wide classifier pack. ``coral`` means the configured pack (``SLEUTH_CLASSIFIER_PACK``: the Coral
    stand-in by default); otherwise a catalog SpeciesNet entry (``speciesnet-4.0.3a``) or a SpeciesNet model
    folder (with its range data for geofencing)."""
    from sleuth.services.model_selection import STANDIN

    source = configured_classifier() if name == "coral" else ("coral" if name == STANDIN else name)
    with _pack_lock:
        pack = _packs.get(source)
        if pack is None:
            from sleuth.engine.batcher import MicroBatcher

            model: Any
            if source == "coral":
                from sleuth.models.classifier import load_coral_pack

                model = load_coral_pack(top_k=MAX_TOP_K)
            elif "/" not in source and not source.startswith("."):
                from sleuth.engine.catalog import load_catalog

                if source not in load_catalog():
                    raise ValueError(f"unknown classifier pack {source!r}")
                model = get_model(source)
                model.top_k = MAX_TOP_K
            else:
                from sleuth.models.speciesnet import SpeciesNetFolder

                model = SpeciesNetFolder.open(source, top_k=MAX_TOP_K)
            pack = BatchedPack(model, MicroBatcher(model, name="classifier", max_batch_size=model.max_batch_size))
            _packs[source] = pack
        return pack


def with_precision(p: Profile, precision: str) -> Profile:
    """``p`` with MD-Lite in the given precision: ``mdlite`` (INT8) or ``mdlite-fp32``."""
    if precision not in ("int8", "fp32"):
        raise ValueError(f"precision must be int8 or fp32, not {precision!r}")
    if p.detector != "mdlite" or precision == "int8":
        return p
    return dataclasses.replace(
        p,
        detector="mdlite-fp32",
        model_version=p.model_version.replace("-int8+", "+").removesuffix("-int8"),
    )


def resolve_profile(name: str, detector_only: bool = False) -> Profile:
    """A profile with the MD-Lite precision, the detector/classifier the settings select
    (:mod:`sleuth.services.model_selection`) and ids saying what runs."""
    from sleuth.engine.runtime import resolve_precision
    from sleuth.services.model_selection import resolve
    from sleuth.settings import get_settings

    settings = get_settings()
    return resolve(
        with_precision(PROFILES[name], resolve_precision(settings.detector_precision)), settings, detector_only
    )


_decode_pool = at_normal_priority(eager_pool, 2, "sleuth-decode")  # shared by sync and job batches: never niced


def _decode(inp: ImageInput) -> DecodedImage:
    if not inp.data:
        raise ValueError("empty file (0 bytes)")
    return decode_image(inp.data, DECODE_MAX_SIDE)


_score_maps: dict[str, tuple[Any, ScoreMap | None]] = {}


def detector_score_map(name: str) -> ScoreMap | None:
    """The catalog ``score_map`` of detector ``name`` (raw score -> MegaDetector scale), or None."""
    entry = getattr(get_model(name), "catalog_entry", None)
    cached = _score_maps.get(name)
    if cached is None or cached[0] is not entry:
        cached = _score_maps[name] = (entry, score_map_of(entry))
    return cached[1]


CATALOG_MAP: Any = object()  # detect_images(score_map=...) default: the detector's catalog score_map


def detect_images(
    profile: Profile, images: Sequence[DecodedImage], lane: str = "interactive", *, score_map: Any = CATALOG_MAP
) -> list[Any]:
    """Per image: the primary detector's result with its scores mapped to the MegaDetector scale (the
    catalog's ``score_map``, or ``score_map`` given: a :class:`ScoreMap`, or None for raw scores), fused
    with the relabeler's person/vehicle boxes (and its class as each box's ``hint``), boxes clipped to
    the image, boxes in an imprinted info bar dropped (``pipelines.wildlife.infobar``)."""
    det = get_batcher(profile.detector)
    futures = [det.submit(img, lane, block=lane == "job") for img in images]  # type: ignore[arg-type]
    rel_futures = []
    if profile.relabeler:
        rel = get_batcher(profile.relabeler)
        rel_futures = [rel.submit(img, lane, block=lane == "job") for img in images]  # type: ignore[arg-type]
    results = [f.result() for f in futures]
    smap = detector_score_map(profile.detector) if score_map is CATALOG_MAP else score_map
    for r in results:
        r.detections = map_detections(r.detections, smap)
    if rel_futures:
        from sleuth.models.yolox_nano import add_coco_hints, fuse_person_vehicle

        for r, rf in zip(results, rel_futures, strict=True):
            coco = rf.result().detections
            r.detections = add_coco_hints(fuse_person_vehicle(r.detections, coco), coco)
    for img, r in zip(images, results, strict=True):
        r.detections = drop_info_bar_boxes(img.rgb, clip_boxes(r.detections))
    return results


def drop_info_bar_boxes(rgb: Any, detections: list[Any]) -> list[Any]:
    """The detections without those lying in an info bar the camera imprinted on the frame (logos, dates)."""
    edge = MAX_FRACTION
    if not any(d.bbox[1] < edge or d.bbox[1] + d.bbox[3] > 1.0 - edge for d in detections):
        return detections  # nothing near the top or bottom edge: no need to look for a bar
    bars = find_info_bars(rgb)
    return [d for d in detections if not in_info_bar(d.bbox, bars)] if bars else detections


def run_images(
    inputs: Sequence[ImageInput],
    options: ImageOptions,
    profile: Profile,
    *,
    lane: str = "interactive",
    detector_only: bool = False,
) -> list[ImageOutcome]:
    """Run a batch; one outcome per input, in order. Raises only for platform errors (queue full).

    ``lane="job"`` first yields to running sync requests (see :class:`InteractiveGate`).
    """
    if lane == "job":
        interactive_gate.yield_to_interactive()
        return _run_images(inputs, options, profile, lane=lane, detector_only=detector_only)
    with interactive_gate.interactive(), compute_gate().interactive_request():
        return _run_images(inputs, options, profile, lane=lane, detector_only=detector_only)


def _run_images(
    inputs: Sequence[ImageInput],
    options: ImageOptions,
    profile: Profile,
    *,
    lane: str,
    detector_only: bool,
) -> list[ImageOutcome]:
    outcomes = [ImageOutcome(index=i, filename=inp.filename, file_size=len(inp.data)) for i, inp in enumerate(inputs)]
    decode_t: list[float] = [0.0] * len(inputs)

    def timed(i: int) -> DecodedImage:
        t = time.perf_counter()
        try:
            return _decode(inputs[i])
        finally:
            decode_t[i] = time.perf_counter() - t

    futures = [_decode_pool.submit(timed, i) for i in range(len(inputs))]
    good: list[tuple[int, DecodedImage]] = []
    for i, fut in enumerate(futures):
        try:
            img = fut.result()
        except ValueError as e:
            outcomes[i].error = ("invalid_image", f"{inputs[i].filename}: {e}")
            continue
        o = outcomes[i]
        o.width, o.height, o.truncated = img.width, img.height, img.truncated
        o.exif = img.exif.as_dict()
        good.append((i, img))
    t_model = time.perf_counter()
    if good:
        images = [img for _, img in good]
        results = detect_images(profile, images, lane)
        if detector_only:
            for (i, _img), res in zip(good, results, strict=True):
                dets = [d for d in res.detections if d.conf >= options.threshold]
                outcomes[i].detections = [
                    {
                        "id": k,
                        "bbox": [round(float(v), 6) for v in d.bbox],
                        "score": round(float(d.conf), 6),
                        "label": COARSE.get(int(d.category), "animal"),
                        "category": str(d.category),
                    }
                    for k, d in enumerate(dets)
                ]
        else:
            classifier = (
                classifier_pack(profile.classifier).with_lane(lane)
                if (options.classify and profile.classifier)
                else None
            )
            annotations = run_pipeline(images, lambda _imgs: results, None, classifier, options)
            for (i, _img), anns in zip(good, annotations, strict=True):
                outcomes[i].annotations = anns
    shared_ms = (time.perf_counter() - t_model) * 1000 / max(1, len(good))
    for i, o in enumerate(outcomes):
        o.processing_time_ms = int(round(decode_t[i] * 1000 + (shared_ms if o.ok else 0)))
    return outcomes


def metadata_of(o: ImageOutcome) -> dict[str, Any]:
    """``metadata`` with only the fields the image actually has."""
    md: dict[str, Any] = {}
    if o.width is not None:
        md["image_width"] = o.width
        md["image_height"] = o.height
    md["file_size"] = o.file_size
    ex = o.exif
    if ex.get("datetime_original"):
        md["datetime_original"] = ex["datetime_original"]
    for k in ("make", "model", "orientation"):
        if ex.get(k) is not None:
            md[k] = ex[k]
    if ex.get("gps_lat") is not None and ex.get("gps_lon") is not None:
        md["gps"] = {"latitude": ex["gps_lat"], "longitude": ex["gps_lon"]}
    if o.truncated:
        md["truncated"] = True
    return md


def item_info(o: ImageOutcome, profile: Profile, options: ImageOptions) -> dict[str, Any]:
    return {
        "processing_time_ms": o.processing_time_ms,
        "model_version": profile.model_version,
        "model_id": profile.model_id,
        "threshold_applied": options.threshold,
    }


def result_item(
    o: ImageOutcome, profile: Profile, options: ImageOptions, *, metadata: bool, detector_only: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {"index": o.index, "filename": o.filename}
    if detector_only:
        item["detections"] = o.detections
    else:
        item["annotations"] = [a.to_dict() for a in o.annotations]
    if metadata:
        item["metadata"] = metadata_of(o)
    item["info"] = item_info(o, profile, options)
    if o.error is not None:
        item["status"] = "failed"
        item["error"] = {"code": o.error[0], "message": o.error[1]}
    return item
