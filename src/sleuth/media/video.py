"""Video frames: PyAV decode and timestamp-based frame sampling.

Sampling
    Target times are ``t_k = start + k / fps`` (``k = 0, 1, ...``) while ``t_k < limit`` with
    ``limit = min(end_region, start + max_video_secs)``. For each target the first decoded frame
    whose timestamp (``pts * time_base``, relative to the stream's first frame) is ``>= t_k`` is
    taken; a frame serves at most one target (so a 1 fps video sampled at 2 fps yields each frame
    once). Decoding seeks to the keyframe before ``start`` (after priming the decoder with the first
    packet, see :func:`_prime`); frames that are not sampled are decoded
    but never converted; sampled frames are converted and downscaled in one swscale call.

Bounded work
    The container header's duration is never trusted: decoding stops at ``limit`` (by frame
    timestamps), at end of stream, or after ``MAX_DECODED_FRAMES`` decoded frames, whichever comes
    first; a stream that decodes nothing raises ``ValueError``. A stream that breaks part-way
    (truncated file) keeps what was decoded and is reported with ``truncated: true``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_DECODED_FRAMES = 100_000  # hard cap on decoded frames per call, whatever the header says
DEFAULT_MAX_VIDEO_SECS = 600.0
FRAME_MAX_SIDE = 1280  # sampled frames are downscaled to this longer side at conversion time
_EPS = 1e-6


@dataclass
class SampledFrame:
    sample_index: int  # k of the target time t_k
    frame_index: int  # index of the decoded frame since the start of decoding (after seek)
    timestamp: float  # seconds, relative to the stream start
    rgb: np.ndarray  # HxWx3 uint8 (downscaled to max_side)
    scale: float  # rgb pixels / original pixels


@dataclass
class SampleReport:
    frames: list[SampledFrame] = field(default_factory=list)
    decoded: int = 0
    truncated: bool = False
    width: int = 0
    height: int = 0
    fps: float | None = None
    codec: str = ""


def _open(path: str | Path) -> Any:
    import av

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"video file not found: {p.name}")
    if p.stat().st_size == 0:
        raise ValueError("empty video file (0 bytes)")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except Exception as exc:  # av.error.* (InvalidDataError, ...)
        raise ValueError(f"cannot open video: unsupported or corrupt container ({exc})") from exc


def has_audio(path: str | Path) -> bool:
    """True when the container has at least one audio stream."""
    with _open(path) as c:
        return len(c.streams.audio) > 0


def _prime(container: Any, stream: Any) -> None:
    """Feed the stream's first packet to the decoder before a seek.

    Some H.264 files carry their parameter sets (SPS/PPS) in-band, in the first packet only, not in the
    container's extradata: a decoder that starts at a later keyframe never sees them and outputs green
    garbage for every frame (FaceForensics++ clips: "no face" in every frame from the second keyframe
    at 10 s on). The parameter sets stay in the decoder across the seek's flush.
    """
    import av

    try:
        for packet in container.demux(stream):
            if packet.size:
                stream.codec_context.decode(packet)
                return
    except av.error.FFmpegError:
        return


def _frame_time(frame: Any, stream: Any, t0: float | None, fallback_index: int, rate: float | None) -> float:
    if frame.pts is not None and stream.time_base is not None:
        return float(frame.pts * stream.time_base)
    if frame.time is not None:
        return float(frame.time)
    if rate:
        return (t0 or 0.0) + fallback_index / rate
    raise ValueError("video frames carry no timestamps")


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    start_region: float | None = None,
    end_region: float | None = None,
    max_video_secs: float | None = DEFAULT_MAX_VIDEO_SECS,
    max_side: int = FRAME_MAX_SIDE,
    max_decoded: int = MAX_DECODED_FRAMES,
) -> SampleReport:
    """Decode ``path`` and return the frames sampled at ``fps`` (see module docstring)."""
    return SampleReport(
        **_collect(iter_frames(path, fps, start_region, end_region, max_video_secs, max_side, max_decoded))
    )


def _collect(gen: Iterator[SampledFrame | SampleReport]) -> dict[str, Any]:
    frames: list[SampledFrame] = []
    report: SampleReport | None = None
    for item in gen:
        if isinstance(item, SampleReport):
            report = item
        else:
            frames.append(item)
    assert report is not None
    return {**report.__dict__, "frames": frames}


def _validate_region(
    fps: float, start_region: float | None, end_region: float | None, max_video_secs: float | None
) -> tuple[float, float]:
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError("fps must be a positive number")
    start = float(start_region or 0.0)
    if start < 0 or not math.isfinite(start):
        raise ValueError("start_region must be >= 0")
    limit = math.inf
    if end_region is not None:
        if not end_region > start:
            raise ValueError("end_region must be greater than start_region")
        limit = float(end_region)
    if max_video_secs is not None:
        if not max_video_secs > 0:
            raise ValueError("max_video_secs must be > 0")
        limit = min(limit, start + float(max_video_secs))
    return start, limit


def iter_frames(
    path: str | Path,
    fps: float = 2.0,
    start_region: float | None = None,
    end_region: float | None = None,
    max_video_secs: float | None = DEFAULT_MAX_VIDEO_SECS,
    max_side: int = FRAME_MAX_SIDE,
    max_decoded: int = MAX_DECODED_FRAMES,
) -> Iterator[SampledFrame | SampleReport]:
    """Yield sampled frames as they are decoded, then one final :class:`SampleReport` (no frames)."""
    import av

    start, limit = _validate_region(fps, start_region, end_region, max_video_secs)
    container = _open(path)
    report = SampleReport()
    try:
        if not container.streams.video:
            raise ValueError("no video stream in file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        report.codec = cc.name or ""
        report.width, report.height = int(cc.width or 0), int(cc.height or 0)
        rate = float(stream.average_rate) if stream.average_rate else None
        report.fps = rate
        t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        if start > 0 and t0 is not None and stream.time_base is not None:
            _prime(container, stream)
            try:
                container.seek(int((start + t0) / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError:
                container.seek(0)
        k = 0
        next_t = start
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > max_decoded:
                    break
                ts = _frame_time(frame, stream, t0, decoded - 1, rate)
                if t0 is None:
                    t0 = ts
                ts -= t0
                if ts >= limit - _EPS:
                    break
                if ts < next_t - _EPS:
                    continue  # not sampled: never converted
                w, h = frame.width, frame.height
                if w <= 0 or h <= 0:
                    continue
                s = min(1.0, max_side / max(w, h))
                ow, oh = max(2, round(w * s)), max(2, round(h * s))
                rgb = frame.to_ndarray(format="rgb24", width=ow, height=oh)
                yield SampledFrame(k, decoded - 1, round(ts, 6), rgb, ow / w)
                # next target strictly after this frame: one frame serves one target at most
                while next_t <= ts + _EPS:
                    k += 1
                    next_t = start + k / fps
                if next_t >= limit - _EPS:
                    break
        except av.error.FFmpegError as exc:
            if decoded <= 1:
                raise ValueError(f"cannot decode video: {exc}") from exc
            report.truncated = True
        report.decoded = decoded
        if decoded == 0:
            raise ValueError("video stream has no decodable frames")
        yield report
    finally:
        container.close()
