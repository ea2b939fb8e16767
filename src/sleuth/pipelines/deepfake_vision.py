"""Image deepfake analysis: bytes in, Resemble-style ``image_metrics`` dict out.

``analyze_image(data, detector, model)`` decodes the image (EXIF-upright RGB), finds faces with
MTCNN, crops each (square, 1.2x margin, eyes levelled), scores each crop with MesoNet and returns::

    {"type": "facial", "label": "fake" | "real", "score": P(fake) of the most suspicious face,
     "image": None,              # visualisation URL, filled in by the API
     "children": [{"type": "face", "box": [x, y, w, h], "score": P(fake), "label": ...,
                   "face_confidence": detector probability}, ...]}

An image without a detectable face gets ``label: "unknown"``, ``score: None`` and a
``description`` saying that no face was analysed - never "real". Undecodable input raises
``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sleuth.models.faces import MTCNN, Face, decode_rgb
from sleuth.models.mesonet import MesoNet
from sleuth.pipelines.faces import crop_face, detect_faces

MAX_FACES = 16  # faces scored per image (largest-confidence first)


def load_default_models(providers: Any = None) -> tuple[MTCNN, MesoNet]:
    """Fetch/convert (once, via the catalog) and load the default detector and classifier."""
    from sleuth.engine.catalog import ensure

    det = MTCNN()
    det.load(ensure("mtcnn"), providers)
    model = MesoNet()
    model.load(ensure("mesonet"), providers)
    return det, model


def score_faces(rgb: np.ndarray, faces: list[Face], model: MesoNet) -> list[float]:
    if not faces:
        return []
    return [float(s) for s in model.score_crops([crop_face(rgb, f) for f in faces])]


def analyze_rgb(
    rgb: np.ndarray, detector: MTCNN, model: MesoNet, threshold: float = 0.5
) -> tuple[dict[str, Any], list[Face]]:
    """Like :func:`analyze_image` for a decoded array; also returns the faces (for heatmaps)."""
    faces = detect_faces(detector, rgb)[:MAX_FACES]
    scores = score_faces(rgb, faces, model)
    children = []
    for face, sc in zip(faces, scores, strict=True):
        children.append(
            {
                "type": "face",
                "box": [round(v, 1) for v in face.xywh],
                "score": round(sc, 6),
                "label": "fake" if sc >= threshold else "real",
                "face_confidence": round(face.score, 4),
            }
        )
    if not children:
        return {
            "type": "facial",
            "label": "unknown",
            "score": None,
            "image": None,
            "description": "no face was detected in the image; nothing was analysed",
            "children": [],
        }, faces
    top = max(scores)
    return {
        "type": "facial",
        "label": "fake" if top >= threshold else "real",
        "score": round(top, 6),
        "image": None,
        "children": children,
    }, faces


def analyze_image(data: bytes, detector: MTCNN, model: MesoNet, threshold: float = 0.5) -> dict[str, Any]:
    """``image_metrics`` for one encoded image (see module docstring). ValueError on bad input."""
    result, _ = analyze_rgb(decode_rgb(data), detector, model, threshold)
    return result
