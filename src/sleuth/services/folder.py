"""Local folder runner behind ``sleuth detect``: walk, read, detect, checkpoint, resume.

Flow (memory stays flat: only the small per-file records are kept, never decoded images)::

    discover(paths) -> sorted InputFile list (images + camera-trap videos, relative names)
    reader thread   -> chunks of <= chunk_size work items (image bytes, or sampled video frames
                       re-encoded as JPEG), bounded queue of 2 chunks
    main thread     -> engine.detect(chunk) with at most ``in_flight`` chunks running (decode of
                       the next chunk overlaps inference of the current one; the per-model
                       micro-batchers batch across them) -> ImageRecord per finished file
                    -> checkpoint (JSON lines, appended and fsynced every N files) -> progress

Engines: :class:`LocalEngine` (``services.wildlife.run_images``, same profiles as the server) and
:class:`ServerEngine` (``POST /v1/batch-detect`` of a running sleuth, bounded concurrency).
Both return the same :class:`~sleuth.exports.records.ImageRecord` objects, so every export format
works the same way for both.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sleuth.exports.megadetector import parse_datetime
from sleuth.exports.records import VIDEO_EXTENSIONS, DetectionRecord, ImageRecord, RunInfo

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
CHECKPOINT_VERSION = 1
SERVER_MAX_IMAGES = 10  # /v1/batch-detect takes 1-10 images per request
_HUMAN_LABELS = {"human", "person"}

__all__ = [
    "IMAGE_EXTENSIONS",
    "Checkpoint",
    "DetectConfig",
    "Engine",
    "InputFile",
    "ItemResult",
    "LocalEngine",
    "RunStats",
    "ServerEngine",
    "WorkItem",
    "discover",
    "record_from_json",
    "record_to_json",
    "run_folder",
    "run_info",
]


# --------------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # relative, forward slashes: the ``file`` of the results

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def _wanted(p: Path) -> bool:
    ext = p.suffix.lower()
    return ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS


def discover(paths: Sequence[str | Path], *, recursive: bool = True) -> list[InputFile]:
    """Images and videos under ``paths`` (folders walked recursively; files taken as given).

    Names are relative to the common parent of the inputs (the folder itself for one folder),
    with forward slashes, sorted. Hidden files and folders (``.name``) are skipped. Raises
    ``ValueError`` for a path that does not exist or when nothing is found.
    """
    if not paths:
        raise ValueError("no input paths given")
    found: dict[Path, None] = {}
    roots: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise ValueError(f"input not found: {raw}")
        p = p.resolve()
        if p.is_dir():
            roots.append(p)
            it = p.rglob("*") if recursive else p.glob("*")
            for f in it:
                rel = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel):
                    continue
                if f.is_file() and _wanted(f):
                    found.setdefault(f, None)
        else:
            roots.append(p.parent)
            found.setdefault(p, None)
    if not found:
        raise ValueError(
            "no images or videos found in "
            + ", ".join(str(p) for p in paths)
            + f" (extensions: {', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})"
        )
    base = Path(os.path.commonpath([str(r) for r in roots]))
    files = [InputFile(f, f.relative_to(base).as_posix()) for f in found]
    files.sort(key=lambda f: f.name)
    return files


def read_file_list(path: str | Path) -> list[str]:
    """Paths listed one per line in a text file (blank lines and ``#`` comments ignored); relative
    paths are relative to the list's folder."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"file list not found: {path}") from None
    out = []
    for line in lines:
        s = line.strip()
        if s and not s.startswith("#"):
            q = Path(s).expanduser()
            out.append(str(q if q.is_absolute() else p.parent / q))
    return out


# --------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class DetectConfig:
    """Options of a folder run; the fields that change results are checked on ``--resume``."""

    profile: str = "default"
    threshold: float = 0.2
    classify: bool = True
    country: str | None = None
    admin1: str | None = None
    video_fps: float = 1.0
    max_video_secs: float | None = 600.0
    chunk_size: int = 16
    checkpoint_every: int = 100
    server: str | None = None
    precision: str | None = None  # MD-Lite int8/fp32 (auto resolved); None = the detector_precision setting

    def __post_init__(self) -> None:
        if self.server is not None:
            if self.precision is not None:
                raise ValueError("--precision applies to local runs; with --server the server's setting decides")
        else:
            from sleuth.engine.runtime import resolve_precision
            from sleuth.settings import get_settings

            object.__setattr__(
                self, "precision", resolve_precision(self.precision or get_settings().detector_precision)
            )
        if self.chunk_size < 1:
            raise ValueError("chunk size must be >= 1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint interval must be >= 1")
        if not self.video_fps > 0:
            raise ValueError("video fps must be > 0")
        if self.country is not None:
            from sleuth.pipelines.geo import resolve_country

            object.__setattr__(self, "country", resolve_country(self.country))
        self.image_options()  # validates threshold/admin1

    def image_options(self) -> Any:
        from sleuth.pipelines.wildlife import ImageOptions

        return ImageOptions(threshold=self.threshold, classify=self.classify, country=self.country, admin1=self.admin1)

    def result_key(self) -> dict[str, Any]:
        """The options that change results (a checkpoint made with other values cannot be resumed)."""
        return {
            "profile": self.profile,
            "threshold": self.threshold,
            "classify": self.classify,
            "country": self.country,
            "admin1": self.admin1,
            "video_fps": self.video_fps,
            "max_video_secs": self.max_video_secs,
            "precision": self.precision,
        }

    def resolved_profile(self) -> Any:
        """The profile a local run uses (with ``--server``: the profile as named; the server decides precision)."""
        from sleuth.services.wildlife import PROFILES, with_precision

        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        p = PROFILES[self.profile]
        return p if self.precision is None else with_precision(p, self.precision)


def run_info(
    config: DetectConfig, completion_time: datetime | None = None, model_version: str | None = None
) -> RunInfo:
    """``model_version``: what the server reported (``--server`` runs); else the local profile's."""
    p = config.resolved_profile()
    detector, _, classifier = (model_version or p.model_version).partition("+")
    return RunInfo(
        detector=detector,
        classifier=(classifier or None) if config.classify else None,
        threshold=config.threshold,
        completion_time=completion_time,
        classification_completion_time=completion_time if (config.classify and classifier) else None,
        detector_metadata={
            "typical_detection_threshold": config.threshold,
            "sleuth_profile": p.name,
            "sleuth_model_id": p.model_id,
        },
        extra={
            "sleuth": {k: v for k, v in config.result_key().items() if v is not None}
            | ({"server": config.server} if config.server else {})
        },
    )


# --------------------------------------------------------------------------------------------------
# records <-> JSON (checkpoint lines)


def record_to_json(r: ImageRecord) -> dict[str, Any]:
    d = asdict(r)
    d["datetime"] = r.datetime.isoformat() if r.datetime is not None else None
    for det in d["detections"]:
        det["bbox"] = list(det["bbox"])
        det["classifications"] = [list(c) for c in det["classifications"]]
    return d


def record_from_json(d: dict[str, Any]) -> ImageRecord:
    dets = [
        DetectionRecord(
            category=int(x["category"]),
            conf=float(x["conf"]),
            bbox=tuple(x["bbox"]),
            label=x.get("label"),
            label_score=x.get("label_score"),
            classifications=[(str(c[0]), float(c[1])) for c in x.get("classifications") or []],
            frame_number=x.get("frame_number"),
        )
        for x in d.get("detections") or []
    ]
    dt = d.get("datetime")
    return ImageRecord(
        file=d["file"],
        detections=dets,
        width=d.get("width"),
        height=d.get("height"),
        datetime=datetime.fromisoformat(dt) if dt else None,
        exif=dict(d.get("exif") or {}),
        failure=d.get("failure"),
        is_video=bool(d.get("is_video")),
        frame_rate=d.get("frame_rate"),
        frames_processed=d.get("frames_processed"),
        camera=d.get("camera"),
    )


class Checkpoint:
    """JSON-lines partial results: a header line with the options, then one record per line.

    Records are appended in one ``write`` per flush followed by ``fsync``; a torn last line (power
    loss mid-write) is ignored on load, so a crash loses at most the files since the last flush.
    """

    def __init__(self, path: str | Path, config: DetectConfig) -> None:
        self.path = Path(path)
        self.config = config
        self._pending: list[str] = []
        self._fh: Any = None

    def load(self) -> dict[str, ImageRecord]:
        """Finished records of an earlier run (``{}`` when there is no checkpoint)."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8").split("\n")
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            raise ValueError(f"{self.path} is not a sleuth checkpoint (bad header)") from None
        if not isinstance(header, dict) or header.get("sleuth_checkpoint") != CHECKPOINT_VERSION:
            raise ValueError(f"{self.path} is not a sleuth checkpoint (version {CHECKPOINT_VERSION})")
        want = json.loads(json.dumps(self.config.result_key()))
        stored = dict(header.get("options") or {})
        # Checkpoints from before the precision option: local runs used MD-Lite's FP32 graph.
        stored.setdefault("precision", None if self.config.server else "fp32")
        if stored != want:
            diff = [
                f"{k}: checkpoint {stored.get(k)!r}, now {want.get(k)!r}"
                for k in sorted(want.keys() | stored.keys())
                if stored.get(k) != want.get(k)
            ]
            raise ValueError(
                f"checkpoint {self.path} was made with different options ({'; '.join(diff)}): rerun with the "
                "same options, or delete it to start over"
            )
        out: dict[str, ImageRecord] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                rec = record_from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # torn trailing line
            out[rec.file] = rec
        return out

    def start(self, existing: Iterable[ImageRecord]) -> None:
        """Rewrite the checkpoint (atomically: temp file + rename) with ``existing``, then append."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            header = {"sleuth_checkpoint": CHECKPOINT_VERSION, "options": self.config.result_key()}
            f.write(json.dumps(header) + "\n")
            for r in existing:
                f.write(json.dumps(record_to_json(r), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, r: ImageRecord) -> None:
        self._pending.append(json.dumps(record_to_json(r), ensure_ascii=False) + "\n")
        if len(self._pending) >= self.config.checkpoint_every:
            self.flush()

    def flush(self) -> None:
        if self._fh is None or not self._pending:
            return
        data = "".join(self._pending)
        self._pending.clear()  # before writing: an interrupt mid-flush must not write the lines twice
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self, *, remove: bool = False) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
        if remove:
            self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# engines


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


# --------------------------------------------------------------------------------------------------
# reading (producer)


@dataclass
class _VideoMeta:
    frame_rate: float | None = None
    width: int | None = None
    height: int | None = None
    frames: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Chunk:
    items: list[WorkItem]
    failures: list[tuple[int, str]]  # files that failed before detection (unreadable)
    videos: dict[int, _VideoMeta]  # videos whose last item is in this chunk


def _encode_jpeg(rgb: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _video_items(idx: int, f: InputFile, cfg: DetectConfig, meta: _VideoMeta) -> Iterator[WorkItem]:
    """Sampled frames of a video as JPEG work items (the last one flagged). ``meta`` is filled."""
    from sleuth.pipelines.video import SampledFrame, SampleReport, iter_frames

    prev: WorkItem | None = None
    try:
        for fr in iter_frames(f.path, cfg.video_fps, None, None, cfg.max_video_secs):
            if isinstance(fr, SampleReport):
                meta.frame_rate, meta.width, meta.height = fr.fps, fr.width or None, fr.height or None
                continue
            assert isinstance(fr, SampledFrame)
            if prev is not None:
                yield prev
            meta.frames.append(fr.frame_index)
            prev = WorkItem(idx, f"{f.name}#frame{fr.frame_index}", _encode_jpeg(fr.rgb), fr.frame_index, last=False)
    except ValueError as e:
        meta.error = str(e)
    except Exception as e:  # noqa: BLE001 - a broken file fails itself, never the run
        meta.error = f"cannot read video: {e}"
    if prev is not None and meta.error is None:
        prev.last = True
        yield prev


def _produce(
    files: Sequence[tuple[int, InputFile]], cfg: DetectConfig, out: queue.Queue[_Chunk | None], stop: threading.Event
) -> None:
    items: list[WorkItem] = []
    failures: list[tuple[int, str]] = []
    videos: dict[int, _VideoMeta] = {}

    def put() -> bool:
        nonlocal items, failures, videos
        while not stop.is_set():
            try:
                out.put(_Chunk(items, failures, videos), timeout=0.2)
                break
            except queue.Full:
                continue
        items, failures, videos = [], [], {}
        return not stop.is_set()

    try:
        for idx, f in files:
            if stop.is_set():
                return
            if f.is_video:
                meta = _VideoMeta()
                for it in _video_items(idx, f, cfg, meta):
                    items.append(it)
                    if len(items) >= cfg.chunk_size and not it.last and not put():
                        return
                    if stop.is_set():
                        return
                if meta.error is not None or not meta.frames:
                    # drop frames already queued in this chunk; earlier chunks are ignored by the collector
                    items = [i for i in items if i.file_index != idx]
                    failures.append((idx, meta.error or "video has no frames"))
                else:
                    videos[idx] = meta
            else:
                try:
                    data = f.path.read_bytes()
                except OSError as e:
                    failures.append((idx, f"cannot read file: {e.strerror or e}"))
                else:
                    items.append(WorkItem(idx, f.name, data))
            if len(items) >= cfg.chunk_size and not put():
                return
        if items or failures or videos:
            put()
    finally:
        while True:
            try:
                out.put(None, timeout=0.2)
                break
            except queue.Full:
                if stop.is_set():
                    with contextlib.suppress(queue.Empty):
                        out.get_nowait()


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class RunStats:
    total: int = 0
    skipped: int = 0  # already in the checkpoint
    processed: int = 0  # this run
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    limited: bool = False  # stopped by max_files


def _image_record(f: InputFile, r: ItemResult) -> ImageRecord:
    if r.error is not None:
        return ImageRecord(file=f.name, failure=r.error)
    exif: dict[str, Any] = {}
    ex = r.exif
    if ex.get("datetime_original"):
        exif["DateTimeOriginal"] = ex["datetime_original"]
    for src, dst in (
        ("make", "Make"),
        ("model", "Model"),
        ("orientation", "Orientation"),
        ("gps_lat", "GPSLatitude"),
        ("gps_lon", "GPSLongitude"),
    ):
        if ex.get(src) is not None:
            exif[dst] = ex[src]
    return ImageRecord(
        file=f.name,
        detections=r.detections,
        width=r.width,
        height=r.height,
        datetime=parse_datetime(ex.get("datetime_original")),
        exif=exif,
    )


def run_folder(
    files: Sequence[InputFile],
    config: DetectConfig,
    engine: Engine,
    *,
    done: dict[str, ImageRecord] | None = None,
    on_record: Callable[[ImageRecord], None] | None = None,
    max_files: int | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[ImageRecord], RunStats]:
    """Process ``files`` not already in ``done``; returns all records (``done`` + new), in file order.

    ``on_record`` is called once per finished file (checkpoint, progress). ``max_files`` stops after
    that many new files. ``KeyboardInterrupt`` (or ``stop`` being set) ends the run early with
    ``stats.interrupted``; the records finished so far are returned either way.
    """
    done = dict(done or {})
    stats = RunStats(total=len(files))
    todo = [(i, f) for i, f in enumerate(files) if f.name not in done]
    stats.skipped = len(files) - len(todo)
    if max_files is not None and len(todo) > max_files:
        todo = todo[:max_files]
        stats.limited = True
    stop = stop or threading.Event()
    q: queue.Queue[_Chunk | None] = queue.Queue(maxsize=2)
    producer = threading.Thread(target=_produce, args=(todo, config, q, stop), name="sleuth-reader", daemon=True)
    new: dict[int, ImageRecord] = {}
    partial: dict[int, ImageRecord] = {}
    failed_videos: set[int] = set()
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, engine.in_flight), thread_name_prefix="sleuth-detect")
    running: deque[tuple[_Chunk, Future[list[ItemResult]]]] = deque()

    def finish(idx: int, rec: ImageRecord) -> None:
        new[idx] = rec
        stats.processed += 1
        if rec.failure is not None:
            stats.failed += 1
        if on_record is not None:
            on_record(rec)

    def collect(chunk: _Chunk, results: list[ItemResult]) -> None:
        for item, res in zip(chunk.items, results, strict=True):
            f = files[item.file_index]
            if item.frame_number is None:
                finish(item.file_index, _image_record(f, res))
                continue
            if item.file_index in failed_videos:
                continue
            stats.frames += 1
            rec = partial.get(item.file_index)
            if rec is None:
                rec = partial[item.file_index] = ImageRecord(file=f.name, is_video=True)
            if res.error is not None:  # a frame we encoded ourselves failed: fail the video
                failed_videos.add(item.file_index)
                partial.pop(item.file_index, None)
                finish(item.file_index, ImageRecord(file=f.name, is_video=True, failure=res.error))
                continue
            for d in res.detections:
                d.frame_number = item.frame_number
            rec.detections.extend(res.detections)
        for idx, meta in chunk.videos.items():
            rec = partial.pop(idx, None)
            if rec is None or idx in failed_videos:
                continue
            rec.frame_rate, rec.width, rec.height = meta.frame_rate, meta.width, meta.height
            rec.frames_processed = list(meta.frames)
            finish(idx, rec)
        for idx, msg in chunk.failures:
            partial.pop(idx, None)
            if idx not in new:
                finish(idx, ImageRecord(file=files[idx].name, failure=msg, is_video=files[idx].is_video))

    producer.start()
    try:
        eof = False
        while not eof or running:
            while not eof and len(running) < max(1, engine.in_flight):
                chunk = q.get()
                if chunk is None:
                    eof = True
                    break
                running.append((chunk, pool.submit(engine.detect, chunk.items) if chunk.items else _done_future()))
            if running:
                chunk, fut = running.popleft()
                collect(chunk, fut.result())
            if stop.is_set():
                stats.interrupted = True
                break
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        stop.set()
        for _, fut in running:
            fut.cancel()
        pool.shutdown(wait=not stats.interrupted, cancel_futures=True)
        while True:  # unblock the producer
            try:
                q.get_nowait()
            except queue.Empty:
                break
        producer.join(timeout=5)
        stats.seconds = time.perf_counter() - t0
    by_name = dict(done)
    for idx, rec in new.items():
        by_name[files[idx].name] = rec
    ordered = [by_name[f.name] for f in files if f.name in by_name]
    return ordered, stats


def _done_future() -> Future[list[ItemResult]]:
    f: Future[list[ItemResult]] = Future()
    f.set_result([])
    return f
