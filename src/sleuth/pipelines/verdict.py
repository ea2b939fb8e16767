"""Calibrated verdicts: a raw model score, its calibrated decision threshold, one label and a certainty.

Each detector (AASIST on speech, MesoNet on face tracks) outputs P(fake) on its own scale, and its decision
threshold is chosen on held-out data (``sleuth/data/calibration/deepfake-*.json``, :mod:`sleuth.services.thresholds`).
To compare or combine detectors, a raw score ``s`` with threshold ``t`` is mapped to a **calibrated score**
``c`` on one common scale where the threshold sits at 0.5, piecewise linearly (monotone, 0 -> 0, t -> 0.5, 1 -> 1)::

    c = 0.5 * s / t                      if s < t
    c = 0.5 + 0.5 * (s - t) / (1 - t)    if s >= t

so ``c >= 0.5`` exactly when the detector calls the media fake at its calibrated threshold. **certainty** is the
calibrated score's distance to the threshold, scaled to [0, 1]: ``|c - 0.5| * 2`` (0 = at the threshold, 1 = the
raw score is 0 or 1). It says how far the score is from the decision, not a probability of being right.

**One verdict per video** (:func:`combine`): fake if the face track or the audio track is fake at its own
threshold; its score is the larger calibrated score of the parts that were analysed, and ``decided_by`` names the
part that gave it. A part that could not be analysed (no face seen, no audio track) does not vote; with neither,
the verdict is ``unknown``.
"""

from __future__ import annotations

from typing import Any


def calibrate(score: float, threshold: float) -> float:
    """Raw P(fake) -> calibrated score (threshold at 0.5); see the module docstring."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    s = min(1.0, max(0.0, float(score)))
    if s < threshold:
        return 0.5 * s / threshold
    return 0.5 + 0.5 * (s - threshold) / (1.0 - threshold)


def certainty(calibrated: float) -> float:
    return min(1.0, abs(float(calibrated) - 0.5) * 2.0)


def part(score: float | None, threshold: float) -> dict[str, Any] | None:
    """One detector's vote: raw score, threshold, calibrated score, certainty and label (None if not analysed)."""
    if score is None:
        return None
    c = calibrate(score, threshold)
    return {
        "label": "fake" if c >= 0.5 else "real",
        "score": round(c, 6),
        "raw_score": round(float(score), 6),
        "threshold": round(threshold, 6),
        "certainty": round(certainty(c), 6),
    }


def combine(parts: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The video's verdict from its parts (``{"faces": part(...), "audio": part(...)}``)."""
    voted = {name: p for name, p in parts.items() if p is not None}
    if not voted:
        return {
            "label": "unknown",
            "score": None,
            "certainty": None,
            "decided_by": None,
            "parts": parts,
            "description": "neither a face nor an audio track could be analysed",
        }
    name, top = max(voted.items(), key=lambda kv: kv[1]["score"])
    return {
        "label": "fake" if top["score"] >= 0.5 else "real",
        "score": top["score"],
        "certainty": top["certainty"],
        "decided_by": name,
        "parts": parts,
    }
