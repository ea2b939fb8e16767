"""Calibrated audio verdicts and audio source tracing (pure numpy, data from ``sleuth/data/calibration``).

``audio.json`` (made by ``scripts/audio_calibrate.py``; recipe and numbers in docs/audio-calibration.md):

* ``head``: a logistic regression on the detector's penultimate embedding of each window
  (standardised by ``mean`` / ``scale``), giving the window's calibrated P(fake); ``null`` means
  the detector's own ``softmax(logits)[0]`` is used;
* ``threshold``: the file is fake iff the mean window P(fake) is at least this. It was chosen so
  that at most 5 % of real speech that the head was not trained on is called fake.

Served scores are mapped so that the threshold sits at 0.5 (piecewise linear, monotone):
``served(p) = 0.5 p / t`` below ``t`` and ``0.5 + 0.5 (p - t) / (1 - t)`` above. So
``label == "fake"`` iff ``aggregated_score >= 0.5``, and ``certainty = |2 aggregated_score - 1|``:
0 at the threshold, 1 at P(fake) 0 or 1.

``source_tracing`` (same file): a multinomial logistic regression on the same embedding over
synthesis families (``formant``, ``diphone``, ``hmm``, ``neural``); a clip whose best family
probability is below ``reject_below``, or whose distance to that family's centroid (in
standardised units) is above ``max_distance``, is ``unknown``. Real verdicts trace to ``real``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

CALIBRATION_FILE = "audio.json"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


@dataclass(frozen=True)
class LinearHead:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [D] binary, or [K, D] multinomial
    intercept: np.ndarray  # [] or [K]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LinearHead:
        return cls(*(np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "coef", "intercept")))

    def standardise(self, emb: np.ndarray) -> np.ndarray:
        x = np.asarray(emb, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"embedding must be [N, {self.mean.shape[0]}], got {x.shape}")
        return np.asarray((x - self.mean) / self.scale)

    def decision(self, emb: np.ndarray) -> np.ndarray:
        return np.asarray(self.standardise(emb) @ self.coef.T + self.intercept)


@dataclass(frozen=True)
class SourceTracer:
    head: LinearHead
    classes: list[str]
    centroids: np.ndarray  # [K, D] in standardised units
    reject_below: float
    max_distance: float

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SourceTracer:
        return cls(
            LinearHead.from_json(d),
            list(d["classes"]),
            np.asarray(d["centroids"], dtype=np.float64),
            float(d["reject_below"]),
            float(d["max_distance"]),
        )

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        z = self.head.decision(emb)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def trace(self, emb: np.ndarray) -> dict[str, Any]:
        """Family of one recording from its window embeddings ``[N, D]`` (mean over windows)."""
        p = self.probabilities(emb).mean(axis=0)
        k = int(p.argmax())
        centre = self.head.standardise(emb).mean(axis=0)
        dist = float(np.linalg.norm(centre - self.centroids[k]) / np.sqrt(self.centroids.shape[1]))
        label = self.classes[k] if p[k] >= self.reject_below and dist <= self.max_distance else "unknown"
        return {"label": label, "probability": float(p[k]), "distance": dist}


@dataclass(frozen=True)
class AudioCalibration:
    model: str
    embedding: str
    threshold: float
    head: LinearHead | None
    tracer: SourceTracer | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AudioCalibration:
        t = float(d["threshold"])
        if not 0.0 < t < 1.0:
            raise ValueError(f"calibration threshold must be in (0, 1), got {t}")
        head = LinearHead.from_json(d["head"]) if d.get("head") else None
        tracer = SourceTracer.from_json(d["source_tracing"]) if d.get("source_tracing") else None
        return cls(str(d["model"]), str(d.get("embedding", "embedding")), t, head, tracer, d)

    def window_p_fake(self, logits: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) per window from the detector's logits ``[N, 2]`` and embeddings ``[N, D]``."""
        if self.head is None:
            lo = np.asarray(logits, dtype=np.float64)
            return _sigmoid(lo[:, 0] - lo[:, 1])
        return _sigmoid(self.head.decision(embedding))

    def served(self, p: np.ndarray | float) -> np.ndarray:
        """Map P(fake) so that the threshold is 0.5 (monotone, 0 -> 0, 1 -> 1)."""
        t = self.threshold
        q = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return np.asarray(np.where(q < t, 0.5 * q / t, 0.5 + 0.5 * (q - t) / (1.0 - t)))

    def metrics(self, window_p: np.ndarray) -> dict[str, Any]:
        """Resemble ``metrics`` of one recording from its windows' calibrated P(fake)."""
        p = np.asarray(window_p, dtype=np.float64)
        if p.size == 0:
            raise ValueError("no chunk scores to summarise")
        agg_raw = float(p.mean())
        fake = agg_raw >= self.threshold
        agg = float(self.served(agg_raw))
        chunk = self.served(p)
        consistency = float(np.mean((p >= self.threshold) == fake))
        return {
            "label": "fake" if fake else "real",
            "score": [f"{v:.2f}" for v in chunk],
            "consistency": f"{consistency:.2f}",
            "aggregated_score": f"{agg:.3f}",
            "certainty": f"{abs(2.0 * agg - 1.0):.3f}",
            "image": None,
        }


@functools.cache
def load_calibration(name: str = CALIBRATION_FILE) -> AudioCalibration:
    """The committed audio calibration (``sleuth/data/calibration/<name>``)."""
    text = (resources.files("sleuth") / "data" / "calibration" / name).read_text(encoding="utf-8")
    return AudioCalibration.from_json(json.loads(text))


def audio_threshold() -> dict[str, Any]:
    """What a combined (video) verdict needs: the served threshold is always 0.5 on ``aggregated_score``.

    ``raw_threshold`` is the same decision on the mean window P(fake) of ``model`` before mapping.
    """
    cal = load_calibration()
    return {"model": cal.model, "served_threshold": 0.5, "raw_threshold": cal.threshold}
