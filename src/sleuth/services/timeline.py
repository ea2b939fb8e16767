"""A deepfake result laid out along time (what a player shows under the media).

Audio chunks: the result keeps each chunk's score (``metrics.score``) but not its times; they are rebuilt with the
same rule that cut them (:func:`sleuth.pipelines.audio.plan_chunks`, from the analysed duration and the job's
``frame_length``/``start_region``/``end_region``). If that does not give as many chunks as there are scores (a
result from an older version), chunks of ``frame_length`` seconds from the start are used and ``approximate`` is
true. Video windows and frames come from ``video_metrics``' tree as stored.
"""

from __future__ import annotations

from typing import Any

from sleuth.db.models import Job, JobItem
from sleuth.pipelines.audio import DEFAULT_THRESHOLD, SAMPLE_RATE, plan_chunks


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        return None


def audio_chunks(
    metrics: dict[str, Any] | None, duration: float | None, options: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    scores = [_float(s) for s in (metrics or {}).get("score") or []]
    if not scores:
        return [], False
    frame = float(options.get("frame_length") or 2)
    start, end = options.get("start_region"), options.get("end_region")
    approximate = True
    times: list[tuple[float, float]] = []
    if duration:
        try:
            chunks = plan_chunks(round(float(duration) * SAMPLE_RATE), SAMPLE_RATE, frame, start, end)
            if len(chunks) == len(scores):
                times, approximate = [(c.start_s, c.end_s) for c in chunks], False
        except ValueError:
            pass
    if approximate:
        t0 = float(start or 0.0)
        times = [(t0 + i * frame, t0 + (i + 1) * frame) for i in range(len(scores))]
        if duration:
            times = [(a, min(b, float(duration))) for a, b in times]
    return [
        {"start": round(a, 3), "end": round(b, 3), "score": s} for (a, b), s in zip(times, scores, strict=True)
    ], approximate


def video_layout(video_metrics: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    windows: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    for win in (video_metrics or {}).get("children") or []:
        if not isinstance(win, dict):
            continue
        windows.append({"start": win.get("start"), "end": win.get("end"), "score": win.get("score")})
        for fr in win.get("children") or []:
            if not isinstance(fr, dict):
                continue
            faces = [
                {"box": seg.get("box"), "score": seg.get("score"), "track": seg.get("track")}
                for seg in fr.get("children") or []
                if isinstance(seg, dict) and isinstance(seg.get("box"), list)
            ]
            frames.append({"timestamp": fr.get("timestamp"), "score": fr.get("score"), "faces": faces})
    return windows, frames


def timeline(item: JobItem, job: Job, view: dict[str, Any]) -> dict[str, Any]:
    result = item.result or {}
    audio, approx = audio_chunks(result.get("metrics"), result.get("duration"), job.options)
    windows, frames = video_layout(result.get("video_metrics"))
    vis = None
    for k in ("metrics", "image_metrics", "video_metrics"):
        if isinstance(view.get(k), dict) and view[k].get("image"):
            vis = view[k]["image"]
    return {
        "uuid": item.id,
        "media_type": item.media_type,
        "status": view["status"],
        "duration": _float(result.get("duration")),
        "threshold": DEFAULT_THRESHOLD,
        "media_url": view.get("url"),
        "visualization_url": vis,
        "audio": audio,
        "windows": windows,
        "frames": frames,
        "approximate": approx,
    }
