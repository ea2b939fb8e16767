"""Video deepfake analysis: sampled frames (:mod:`sleuth.media.video`), faces, MesoNet, windows.

Frame sampling and its bounds are described in :mod:`sleuth.media.video`.

Scores
    Per face: MesoNet P(fake). Per sampled frame (``ImageResult``): the max over its faces (a frame
    is as fake as its most suspicious face); frames without faces have ``score: null``.
    Per window (``VideoResult``, ``frame_length`` seconds): mean of its frames' scores. Whole video:
    mean over all frames with a face. ``certainty`` is the calibrated score's distance to the
    threshold (:mod:`sleuth.pipelines.verdict`: 0 = at the threshold, 1 = score 0 or 1),
    ``"certainty (%)"`` = certainty * 100 rounded to 0.1. ``conclusion`` / ``label`` are ``"Fake"``
    when score >= ``threshold`` (the calibrated face threshold) else ``"Real"``; ``"NoFace"`` /
    ``"unknown"`` when no face was seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sleuth.media.video import (
    _EPS,
    DEFAULT_MAX_VIDEO_SECS,
    SampleReport,
    iter_frames,
)


# -- analysis ---------------------------------------------------------------------------------------
def certainty(score: float, threshold: float = 0.5) -> float:
    from sleuth.pipelines.verdict import calibrate
    from sleuth.pipelines.verdict import certainty as _certainty

    return _certainty(calibrate(score, threshold))


def _node(kind: str, score: float | None, threshold: float, **extra: Any) -> dict[str, Any]:
    if score is None:
        return {
            "type": kind,
            "conclusion": "NoFace",
            "score": None,
            "certainty": None,
            "certainty (%)": None,
            **extra,
        }
    c = certainty(score, threshold)
    return {
        "type": kind,
        "conclusion": "Fake" if score >= threshold else "Real",
        "score": round(score, 6),
        "certainty": round(c, 6),
        "certainty (%)": round(c * 100, 1),
        **extra,
    }


def analyze_video(
    path: str | Path,
    detector: Any,
    model: Any,
    fps: float = 2.0,
    frame_length: int = 2,
    start_region: float | None = None,
    end_region: float | None = None,
    max_video_secs: float | None = DEFAULT_MAX_VIDEO_SECS,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Full video result: ``video_metrics`` tree plus ``chunks`` for the timeline plot.

    ``detector`` is a loaded :class:`sleuth.models.faces.MTCNN`, ``model`` a loaded
    :class:`sleuth.models.mesonet.MesoNet`.
    """
    from sleuth.pipelines.faces import IoUTracker, crop_face, detect_faces

    if not 1 <= int(frame_length) <= 4:
        raise ValueError("frame_length must be 1-4 seconds")
    tracker = IoUTracker()
    per_frame: list[dict[str, Any]] = []
    crops: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []  # (per_frame index, segment index)
    report: SampleReport | None = None
    for item in iter_frames(path, fps, start_region, end_region, max_video_secs):
        if isinstance(item, SampleReport):
            report = item
            continue
        faces = detect_faces(detector, item.rgb)
        ids = tracker.update(item.sample_index, faces)
        segs = []
        for fi, (face, tid) in enumerate(zip(faces, ids, strict=True)):
            crops.append(crop_face(item.rgb, face))
            owners.append((len(per_frame), fi))
            x, y, w, h = face.scaled(1.0 / item.scale).xywh
            segs.append(
                {
                    "track": tid,
                    "box": [round(v, 1) for v in (x, y, w, h)],
                    "face_confidence": round(face.score, 4),
                }
            )
        per_frame.append({"timestamp": item.timestamp, "segments": segs})
    assert report is not None
    scores = model.score_crops(crops) if crops else np.zeros(0)
    for (pi, si), fake_p in zip(owners, scores, strict=True):
        per_frame[pi]["segments"][si]["score"] = float(fake_p)

    start = float(start_region or 0.0)
    frame_scores: list[float | None] = []
    image_nodes: list[dict[str, Any]] = []
    for pf in per_frame:
        seg_nodes = [
            _node(
                "Segment",
                s["score"],
                threshold,
                track=s["track"],
                box=s["box"],
                face_confidence=s["face_confidence"],
            )
            for s in pf["segments"]
        ]
        fs = max((s["score"] for s in pf["segments"]), default=None)
        frame_scores.append(fs)
        image_nodes.append(_node("ImageResult", fs, threshold, timestamp=pf["timestamp"], children=seg_nodes))

    windows: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    for node, fs in zip(image_nodes, frame_scores, strict=True):
        wi = int((node["timestamp"] - start + _EPS) // frame_length)
        while len(windows) <= wi:
            w0 = start + len(windows) * frame_length
            windows.append({"start": round(w0, 6), "end": round(w0 + frame_length, 6), "nodes": [], "scores": []})
        windows[wi]["nodes"].append(node)
        if fs is not None:
            windows[wi]["scores"].append(fs)
    video_nodes = []
    for win in windows:
        ws = float(np.mean(win["scores"])) if win["scores"] else None
        video_nodes.append(
            _node("VideoResult", ws, threshold, start=win["start"], end=win["end"], children=win["nodes"])
        )
        chunks.append({"start": win["start"], "end": win["end"], "score": ws})
    valid = [s for s in frame_scores if s is not None]
    top: dict[str, Any]
    if valid:
        vs = float(np.mean(valid))
        c = certainty(vs, threshold)
        top = {
            "label": "Fake" if vs >= threshold else "Real",
            "score": round(vs, 6),
            "certainty": round(c, 6),
            "certainty (%)": round(c * 100, 1),
        }
    else:
        top = {
            "label": "unknown",
            "score": None,
            "certainty": None,
            "certainty (%)": None,
            "description": "no face was found in the sampled frames; nothing was analysed",
        }
    top["children"] = video_nodes
    return {
        "video_metrics": top,
        "chunks": chunks,
        "frames_sampled": len(per_frame),
        "frames_decoded": report.decoded,
        "faces_analysed": len(crops),
        "truncated": report.truncated,
        "width": report.width,
        "height": report.height,
    }
