"""Run the deepfake models on one stored media file and shape Resemble's result fields.

* audio  -> ``metrics`` (AASIST on ``frame_length`` chunks) and a timeline PNG;
* image  -> ``image_metrics`` (MTCNN faces, MesoNet per face) and an occlusion heatmap PNG;
* video  -> ``video_metrics`` (sampled frames, faces, MesoNet, per-window tree) plus
  ``metrics`` from the audio track when there is one, and a timeline PNG.

Every result also carries a ``verdict`` (:mod:`sleuth.pipelines.verdict`): each detector's score at its
calibrated threshold (speech: :mod:`sleuth.pipelines.audio_calibration`; face tracks:
:mod:`sleuth.services.thresholds`); for a video, fake if the face track or the audio track is fake, with the
larger calibrated score.

Models come from the process-wide registry (loaded once per process, verified artefacts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleuth.engine.registry import get_model
from sleuth.pipelines import verdict
from sleuth.services.thresholds import threshold

AUDIO_MODEL = "aasist"
FACE_MODEL = "mtcnn"
IMAGE_MODEL = "mesonet"
DEFAULT_VIDEO_FPS = 2.0


def _audio(path: Path, opts: Any, filename: str | None = None) -> dict[str, Any]:
    from sleuth.pipelines.audio import detect_audio_calibrated
    from sleuth.pipelines.audio_calibration import audio_threshold

    # Each frame_length chunk is scored on the 4.04 s of real audio centred on it ("surround"); the
    # detector's embedding of each window goes through the committed calibration (sleuth/data/calibration/
    # audio.json: a logistic head and a threshold chosen for <= 5 % false alarms on held-out real speech,
    # docs/audio-calibration.md), served so that 0.5 is the decision threshold.
    det = detect_audio_calibrated(
        get_model(AUDIO_MODEL),
        path,
        filename or path.name,
        trace=bool(getattr(opts, "audio_source_tracing", False)),
        frame_length=opts.frame_length,
        start_region=opts.start_region,
        end_region=opts.end_region,
    )
    # the verdict's audio part: the mean window P(fake) at the calibration's raw threshold (its calibrated score
    # is the served aggregated_score: the same piecewise-linear map)
    window_p = next(iter(det.per_model.values()))
    vote = verdict.part(sum(window_p) / len(window_p), audio_threshold()["raw_threshold"])
    out = {"metrics": det.metrics, "chunks": det.chunks, "duration": round(det.duration_s, 3), "vote": vote}
    if det.source_tracing is not None:
        out["audio_source_tracing"] = {"label": det.source_tracing["label"], "error_message": None}
    return out


def _tracing_failed(opts: Any, why: str) -> dict[str, Any]:
    if not getattr(opts, "audio_source_tracing", False):
        return {}
    return {"audio_source_tracing": {"label": None, "error_message": why}}


def analyze(path: Path, media_type: str, opts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if media_type == "audio":
        res = _audio(path, opts)
        out.update(metrics=res["metrics"], duration=res["duration"], verdict=verdict.combine({"audio": res["vote"]}))
        if "audio_source_tracing" in res:
            out["audio_source_tracing"] = res["audio_source_tracing"]
        if opts.visualize:
            from sleuth.pipelines.visualize import timeline_png

            out["visualization_png"] = timeline_png(res["chunks"])  # served chunk scores: threshold at 0.5
        return out
    if media_type == "image":
        out.update(_tracing_failed(opts, "audio source tracing applies to audio and video with sound"))
        from sleuth.models.faces import decode_rgb
        from sleuth.pipelines.deepfake_vision import analyze_rgb

        rgb = decode_rgb(path.read_bytes())
        image_metrics, faces = analyze_rgb(rgb, get_model(FACE_MODEL), get_model(IMAGE_MODEL))  # type: ignore[arg-type]
        out["image_metrics"] = image_metrics
        out["verdict"] = verdict.combine({"faces": verdict.part(image_metrics["score"], 0.5)})
        if opts.visualize and faces:
            from sleuth.pipelines.visualize import heatmap_png

            out["visualization_png"] = heatmap_png(rgb, faces, get_model(IMAGE_MODEL))
        return out
    if media_type == "video":
        from sleuth.media.video import has_audio
        from sleuth.pipelines.video import analyze_video

        fps = DEFAULT_VIDEO_FPS if opts.max_video_fps is None else min(DEFAULT_VIDEO_FPS, opts.max_video_fps)
        face_thr = threshold("faces", IMAGE_MODEL).value
        kwargs: dict[str, Any] = {"threshold": face_thr}
        if opts.max_video_secs is not None:
            kwargs["max_video_secs"] = opts.max_video_secs
        res = analyze_video(
            path,
            get_model(FACE_MODEL),
            get_model(IMAGE_MODEL),
            fps=fps,
            frame_length=opts.frame_length,
            start_region=opts.start_region,
            end_region=opts.end_region,
            **kwargs,
        )
        out["video_metrics"] = res["video_metrics"]
        chunks = res["chunks"]
        votes: dict[str, dict[str, Any] | None] = {"faces": verdict.part(res["video_metrics"]["score"], face_thr)}
        votes["audio"] = None
        out["has_audio"] = has_audio(path)
        if out["has_audio"]:
            try:
                a_opts = opts
                if opts.max_video_secs is not None:  # the audio track is capped like the frames are
                    from dataclasses import replace

                    cap = (opts.start_region or 0.0) + opts.max_video_secs
                    a_opts = replace(opts, end_region=min(opts.end_region or cap, cap))
                a = _audio(path, a_opts, path.name)
                out["metrics"] = a["metrics"]
                out["duration"] = a["duration"]  # replaced by the container's duration (services.deepfake)
                votes["audio"] = a["vote"]
                if "audio_source_tracing" in a:
                    out["audio_source_tracing"] = a["audio_source_tracing"]
            except ValueError as e:
                out["notes"] = [f"audio track not analysed: {e}"]
                out.update(_tracing_failed(opts, f"audio track not analysed: {e}"))
        else:
            out.update(_tracing_failed(opts, "the video has no audio track"))
        out["verdict"] = verdict.combine(votes)
        if opts.visualize:
            from sleuth.pipelines.visualize import timeline_png

            if chunks:
                out["visualization_png"] = timeline_png(chunks, threshold=face_thr)
        return out
    raise ValueError(f"unsupported media type {media_type!r}")
