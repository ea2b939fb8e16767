"""Decision thresholds of the face detectors, from the shipped calibration files.

``sleuth/data/calibration/deepfake-<kind>.json`` (``kind`` = ``faces``) holds at least::

    {"format": 1, "kind": "faces", "model": "mesonet", "threshold": 0.489, "score": "...", "chosen_on": "..."}

``threshold`` applies to the score named in ``score``: the ``video_metrics.score`` of a video (mean over sampled
frames with a face of the top face's P(fake)). A file for another model than the one in use, a missing file, or a
malformed one gives the default 0.5 (the model's own decision point) and says so in ``source``. The face
threshold is chosen by ``scripts/calibrate_faces.py``. Speech has its own calibration (a head and a threshold,
:mod:`sleuth.pipelines.audio_calibration`, ``calibration/audio.json``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)
DEFAULT = 0.5


@dataclass(frozen=True)
class Threshold:
    value: float
    source: str  # the calibration file it came from, or why the default is used


def _read(kind: str) -> dict[str, object] | None:
    try:
        text = (resources.files("sleuth") / "data" / "calibration" / f"deepfake-{kind}.json").read_text()
    except (FileNotFoundError, OSError):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        log.warning("calibration/deepfake-%s.json is not JSON; using the default threshold", kind)
        return None
    return data if isinstance(data, dict) else None


@lru_cache(maxsize=8)
def threshold(kind: str, model: str) -> Threshold:
    """The calibrated threshold for ``kind`` (``audio``/``faces``) scored by ``model`` (catalog name)."""
    data = _read(kind)
    name = f"calibration/deepfake-{kind}.json"
    if data is None:
        return Threshold(DEFAULT, f"default {DEFAULT} (no {name})")
    value = data.get("threshold")
    if data.get("model", model) != model:
        return Threshold(DEFAULT, f"default {DEFAULT} ({name} is for {data.get('model')!r}, not {model!r})")
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        return Threshold(DEFAULT, f"default {DEFAULT} ({name} has no threshold in (0, 1))")
    return Threshold(float(value), name)
