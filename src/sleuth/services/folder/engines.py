"""Engines that turn work items into detections: in-process (:class:`LocalEngine`) or a sleuth server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sleuth.exports.records import DetectionRecord
from sleuth.services.folder.config import DetectConfig

SERVER_MAX_IMAGES = 10  # /v1/batch-detect takes 1-10 images per request
_HUMAN_LABELS = {"human", "person"}


@dataclass
class WorkItem:
    """One image, or one sampled video frame, of file ``file_index``."""

    file_index: int
    name: str  # what the engine sees as filename
    data: bytes
    frame_number: int | None = None
    last: bool = True  # last item of its file


@dataclass
class ItemResult:
    detections: list[DetectionRecord] = field(default_factory=list)
    error: str | None = None
    width: int | None = None
    height: int | None = None
    exif: dict[str, Any] = field(default_factory=dict)  # ExifInfo fields (datetime_original, make, ...)


class Engine(Protocol):
    in_flight: int

    def detect(self, items: Sequence[WorkItem]) -> list[ItemResult]: ...

    def close(self) -> None: ...


def label_string(label: str, taxonomy: dict[str, Any] | None) -> str:
    """The SpeciesNet 7-field label of an API annotation (``label`` + ``taxonomy`` object), with the
    API's common name in the last field (so both engines produce the same string)."""
    t = taxonomy or {}
    if not t.get("id"):
        return label
    return ";".join(str(t.get(k) or "") for k in ("id", "class", "order", "family", "genus", "species")) + ";" + label


def _category_of_label(label: str) -> int:
    if label in _HUMAN_LABELS:
        return 2
    if label == "vehicle":
        return 3
    return 1


def _bbox(v: Sequence[float]) -> tuple[float, float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))


class LocalEngine:
    """In-process: ``services.wildlife.run_images`` (profiles, micro-batchers, classifier pack)."""

    def __init__(self, config: DetectConfig, in_flight: int = 2) -> None:
        self.profile = config.resolved_profile()
        self.options = config.image_options()
        self.in_flight = in_flight

    def detect(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        from sleuth.services.wildlife import ImageInput, run_images

        outcomes = run_images([ImageInput(i.name, i.data) for i in items], self.options, self.profile, lane="job")
        out: list[ItemResult] = []
        for o in outcomes:
            if o.error is not None:
                msg = o.error[1]
                out.append(ItemResult(error=msg[len(o.filename) + 2 :] if msg.startswith(o.filename + ": ") else msg))
                continue
            dets = []
            for a in o.annotations:
                lab = label_string(a.label, a.taxonomy)
                dets.append(
                    DetectionRecord(
                        category=int(a.category),
                        conf=float(a.detection_conf),
                        bbox=_bbox(a.bbox),
                        label=lab,
                        label_score=float(a.score),
                        classifications=[(lab, float(a.score))],
                    )
                )
            out.append(ItemResult(dets, None, o.width, o.height, dict(o.exif)))
        return out

    def close(self) -> None:
        pass

    def catalog_models(self) -> list[str]:
        """The catalog entries this run loads (to say which files are missing when a fetch fails)."""
        from sleuth.settings import get_settings

        names = [self.profile.detector] + ([self.profile.relabeler] if self.profile.relabeler else [])
        if self.options.classify and self.profile.classifier and get_settings().classifier_pack.strip() == "coral":
            names += ["coral-imagenet", "coral-inat-birds"]
        return names

    def warm_up(self) -> None:
        """Load the models now (so the progress bar's rate is not skewed by the first load)."""
        from sleuth.engine.registry import get_batcher

        get_batcher(self.profile.detector)
        if self.profile.relabeler:
            get_batcher(self.profile.relabeler)
        if self.options.classify and self.profile.classifier:
            from sleuth.services.wildlife import classifier_pack

            classifier_pack(self.profile.classifier)


class ServerError(RuntimeError):
    """The server refused the run (auth, credits, bad options): stop, with its message."""


class ServerEngine:
    """``POST /v1/batch-detect`` (or ``-urban``) on a running sleuth; at most ``concurrency``
    requests in flight, 10 images each; 429/503 are retried after ``Retry-After``."""

    def __init__(
        self,
        config: DetectConfig,
        url: str,
        api_key: str | None,
        concurrency: int = 4,
        timeout: float = 300.0,
        retries: int = 5,
    ) -> None:
        import httpx

        if config.profile not in ("default", "urban"):
            raise ValueError(f"unknown profile {config.profile!r}; choose default or urban")
        if not 0.01 <= config.threshold <= 0.99:
            raise ValueError("with --server the threshold must be between 0.01 and 0.99 (the API's range)")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        path = "/v1/batch-detect-urban" if config.profile == "urban" else "/v1/batch-detect"
        self.model_version: str | None = None  # the server's info.model_version, once it answered
        self.endpoint = url.rstrip("/") + path
        self.fields = {
            "threshold": str(config.threshold),
            "classify": "true" if config.classify else "false",
            "metadata": "true",
        }
        if config.country:
            self.fields["country"] = config.country
        if config.admin1:
            raise ValueError("--admin1 is not available with --server (send latitude/longitude to the API instead)")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sleuth-upload")
        self.retries = retries
        self.in_flight = max(2, concurrency * SERVER_MAX_IMAGES // max(1, config.chunk_size))

    def _post(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        import httpx

        files = [("images", (i.name.rsplit("/", 1)[-1], i.data, "application/octet-stream")) for i in items]
        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                r = self.client.post(self.endpoint, data=self.fields, files=files)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise ServerError(f"cannot reach {self.endpoint}: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if r.status_code in (429, 502, 503, 504) and attempt < self.retries:
                try:
                    wait = float(r.headers.get("Retry-After", delay))
                except ValueError:
                    wait = delay
                time.sleep(min(wait, 60.0))
                delay = min(delay * 2, 30.0)
                continue
            if r.status_code != 200:
                try:
                    msg = r.json().get("error", {}).get("message") or r.text
                except (ValueError, AttributeError):
                    msg = r.text
                raise ServerError(f"{self.endpoint} answered {r.status_code}: {msg}")
            payload = r.json()
            mv = (payload.get("info") or {}).get("model_version") if isinstance(payload, dict) else None
            if isinstance(mv, str) and mv:
                self.model_version = mv
            return self._parse(payload, len(items))
        raise ServerError(f"{self.endpoint}: gave up after {self.retries} retries")  # pragma: no cover

    @staticmethod
    def _parse(payload: dict[str, Any], n: int) -> list[ItemResult]:
        results = payload.get("results") or []
        if len(results) != n:
            raise ServerError(f"server returned {len(results)} results for {n} images")
        out = []
        for item in results:
            if item.get("status") == "failed":
                err = item.get("error") or {}
                msg = str(err.get("message") or err.get("code") or "failed")
                name = str(item.get("filename") or "")
                out.append(ItemResult(error=msg[len(name) + 2 :] if name and msg.startswith(name + ": ") else msg))
                continue
            md = item.get("metadata") or {}
            exif: dict[str, Any] = {
                k: md[k] for k in ("datetime_original", "make", "model", "orientation") if md.get(k) is not None
            }
            gps = md.get("gps")
            if isinstance(gps, dict):
                exif["gps_lat"], exif["gps_lon"] = gps.get("latitude"), gps.get("longitude")
            dets = []
            for a in item.get("annotations") or []:
                lab = label_string(str(a["label"]), a.get("taxonomy"))
                score = float(a["score"])
                # the API reports the final (ensemble) score, not the detector confidence
                dets.append(
                    DetectionRecord(
                        category=_category_of_label(str(a["label"])),
                        conf=score,
                        bbox=_bbox(a["bbox"]),
                        label=lab,
                        label_score=score,
                        classifications=[(lab, score)],
                    )
                )
            out.append(ItemResult(dets, None, md.get("image_width"), md.get("image_height"), exif))
        return out

    def detect(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        parts = [items[i : i + SERVER_MAX_IMAGES] for i in range(0, len(items), SERVER_MAX_IMAGES)]
        futures = [self.pool.submit(self._post, p) for p in parts]
        out: list[ItemResult] = []
        for f in futures:
            out += f.result()
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
