"""Detector score calibration: a monotone piecewise-linear map from a model's raw score to the MegaDetector scale.

A detector's confidence means nothing by itself: MD-Lite gives 0.3 to an ocelot that MDv5a scores 0.97. The
API's ``threshold`` (default 0.2) is documented on MegaDetector's scale, so each detector's scores are mapped
onto it before any threshold is applied. The map is data, read from the detector's catalog entry::

    [[model]]
    name = "mdlite"
    ...
    [model.score_map]
    x = [0.0, 0.05, 0.1, 0.2, 0.4, 1.0]    # raw scores, strictly increasing, from 0 to 1
    y = [0.0, 0.02, 0.15, 0.5, 0.9, 1.0]   # mapped scores, non-decreasing, within [0, 1]
    fitted_on = "what it was fitted on"   # free text, shown in docs and `sleuth models list`

Scores between knots are interpolated linearly; the map is applied outside the models (in
``services.wildlife``), so a model's own outputs (and its golden parity tests) are untouched.
:func:`fit_isotonic` fits such a map from (raw score, reference score) pairs: pool-adjacent-violators
isotonic regression, then read at fixed knots (fewer knots, less overfitting on a small set).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT_KNOTS", "ScoreMap", "fit_isotonic", "map_detections", "score_map_of"]

#: Raw-score knots a fitted map is read at: dense where thresholds are chosen (0.01 .. 0.5).
DEFAULT_KNOTS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


@dataclass(frozen=True)
class ScoreMap:
    """``y = f(x)``: piecewise linear through the knots ``(x[i], y[i])``; monotone non-decreasing."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    fitted_on: str = ""

    def __post_init__(self) -> None:
        x = tuple(float(v) for v in self.x)
        y = tuple(float(v) for v in self.y)
        if len(x) < 2 or len(x) != len(y):
            raise ValueError(f"score_map needs x and y of the same length >= 2 (got {len(x)} and {len(y)})")
        if not all(math.isfinite(v) for v in x + y):
            raise ValueError("score_map values must be finite numbers")
        if x[0] != 0.0 or x[-1] != 1.0:
            raise ValueError(f"score_map x must start at 0 and end at 1 (got {x[0]} .. {x[-1]})")
        if any(b <= a for a, b in zip(x, x[1:], strict=False)):
            raise ValueError(f"score_map x must be strictly increasing: {list(x)}")
        if any(b < a for a, b in zip(y, y[1:], strict=False)):
            raise ValueError(f"score_map y must be non-decreasing (a calibration keeps the order): {list(y)}")
        if y[0] < 0.0 or y[-1] > 1.0:
            raise ValueError(f"score_map y must lie within [0, 1]: {list(y)}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @classmethod
    def identity(cls) -> ScoreMap:
        return cls((0.0, 1.0), (0.0, 1.0), "identity")

    @property
    def is_identity(self) -> bool:
        return all(a == b for a, b in zip(self.x, self.y, strict=True))

    @classmethod
    def from_config(cls, obj: Any, where: str = "score_map") -> ScoreMap:
        """From a catalog table ``{x = [...], y = [...], fitted_on = "..."}``; ValueError naming ``where``."""
        if isinstance(obj, ScoreMap):
            return obj
        if not isinstance(obj, Mapping):
            raise ValueError(f"{where}: must be a table with x and y lists, got {type(obj).__name__}")
        unknown = set(obj) - {"x", "y", "fitted_on"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (expected x, y, fitted_on)")
        xs, ys = obj.get("x"), obj.get("y")
        if not isinstance(xs, Sequence) or not isinstance(ys, Sequence) or isinstance(xs, str) or isinstance(ys, str):
            raise ValueError(f"{where}: x and y must be lists of numbers")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in [*xs, *ys]):
            raise ValueError(f"{where}: x and y must be lists of numbers")
        fitted = obj.get("fitted_on", "")
        if not isinstance(fitted, str):
            raise ValueError(f"{where}: fitted_on must be a string")
        try:
            return cls(tuple(xs), tuple(ys), fitted)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def to_config(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "fitted_on": self.fitted_on}

    def __call__(self, score: float) -> float:
        return float(np.interp(float(score), self.x, self.y))

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def inverse(self, target: float) -> float:
        """The smallest raw score whose mapped score reaches ``target`` (1.0 if none does)."""
        t = float(target)
        if t <= self.y[0]:
            return 0.0
        for k in range(1, len(self.x)):
            x0, y0, x1, y1 = self.x[k - 1], self.y[k - 1], self.x[k], self.y[k]
            if y1 >= t:
                return x1 if y1 == y0 else x0 + (t - y0) * (x1 - x0) / (y1 - y0)
        return 1.0


def score_map_of(entry: Any) -> ScoreMap | None:
    """The ``score_map`` of a catalog entry (None when it has none); ValueError naming the entry's file."""
    extra = getattr(entry, "extra", None) or {}
    raw = extra.get("score_map")
    if raw is None:
        return None
    where = f"{getattr(entry, 'origin', '') or 'catalog'}: model {getattr(entry, 'name', '?')!r}: score_map"
    return ScoreMap.from_config(raw, where)


def map_detections(detections: Iterable[Any], smap: ScoreMap | None) -> list[Any]:
    """The detections (frozen dataclasses with ``conf``) with mapped confidences, in descending mapped score."""
    dets = list(detections)
    if smap is None or smap.is_identity or not dets:
        return dets
    mapped = smap.apply([d.conf for d in dets])
    out = [dataclasses.replace(d, conf=float(c)) for d, c in zip(dets, mapped, strict=True)]
    return sorted(out, key=lambda d: -d.conf)


def _pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing least-squares fit of ``y`` (already sorted by x)."""
    vals: list[float] = []
    wts: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y, w, strict=True):
        vals.append(float(yi))
        wts.append(float(wi))
        counts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, c2 = vals.pop(), wts.pop(), counts.pop()
            tot = wts[-1] + w2
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / tot if tot > 0 else (vals[-1] + v2) / 2
            wts[-1] = tot
            counts[-1] += c2
    return np.repeat(np.asarray(vals), counts)


def fit_isotonic(
    raw: Sequence[float],
    target: Sequence[float],
    knots: Sequence[float] = DEFAULT_KNOTS,
    *,
    weights: Sequence[float] | None = None,
    fitted_on: str = "",
) -> ScoreMap:
    """A monotone map from ``raw`` to ``target`` scores: isotonic regression, read at ``knots``.

    The isotonic fit is a step function; it is linearly interpolated between the mean raw score of each
    step (from (0, 0) up to the lowest step; held at the top step's value above the highest), then read
    at the knots (0 and 1 always included). Needs at least two pairs.
    """
    x = np.asarray(raw, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.size != t.size or x.size < 2:
        raise ValueError(f"fit_isotonic needs >= 2 (raw, target) pairs of equal length (got {x.size}, {t.size})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
        raise ValueError("fit_isotonic: scores must be finite")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    order = np.lexsort((t, x))
    xs, ts, ws = np.clip(x[order], 0, 1), np.clip(t[order], 0, 1), w[order]
    fit = _pav(ts, ws)
    # one point per step: (mean raw score of the step, its fitted value)
    px: list[float] = []
    py: list[float] = []
    start = 0
    for i in range(1, len(fit) + 1):
        if i == len(fit) or fit[i] != fit[start]:
            px.append(float(np.average(xs[start:i], weights=ws[start:i]) if ws[start:i].sum() > 0 else xs[start]))
            py.append(float(fit[start]))
            start = i
    if px[0] > 0.0:  # from (0, 0) to the lowest step
        px.insert(0, 0.0)
        py.insert(0, 0.0)
    kx = sorted({0.0, 1.0, *(float(k) for k in knots if 0.0 <= k <= 1.0)})
    ky = np.maximum.accumulate(np.clip(np.interp(kx, px, py), 0.0, 1.0))
    return ScoreMap(tuple(kx), tuple(float(v) for v in ky), fitted_on)
