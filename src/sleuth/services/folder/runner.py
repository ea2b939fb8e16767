"""The run: a reader thread producing work items (images, sampled video frames), the engine, the checkpoint."""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sleuth.exports.megadetector import parse_datetime
from sleuth.exports.records import ImageRecord
from sleuth.services.folder.config import DetectConfig
from sleuth.services.folder.engines import Engine, ItemResult, WorkItem
from sleuth.services.folder.inputs import InputFile


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
    from sleuth.media.video import SampledFrame, SampleReport, iter_frames

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
