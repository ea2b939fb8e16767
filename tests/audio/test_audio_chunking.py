"""Pure functions of the audio pipeline: windows, tiling, metrics, window checks."""

from __future__ import annotations

import numpy as np
import pytest

from sleuth.media.audio import fit_window
from sleuth.models.aasist import check_window, p_fake_from_logits
from sleuth.pipelines.audio import Chunk, chunk_windows, plan_chunks, summarize

SR = 16000


def spans(chunks: list[Chunk]) -> list[tuple[float, float]]:
    return [(c.start_s, c.end_s) for c in chunks]


def test_plan_chunks_frames_and_tail():
    assert spans(plan_chunks(5 * SR)) == [(0, 2), (2, 4), (3, 5)]  # 1 s tail -> end-aligned window
    assert spans(plan_chunks(int(4.2 * SR))) == [(0, 2), (2, 4)]  # 0.2 s tail (< 25 %) dropped
    assert spans(plan_chunks(int(1.5 * SR))) == [(0, 1.5)]  # shorter than a frame: one short window
    assert spans(plan_chunks(8 * SR, frame_length=4)) == [(0, 4), (4, 8)]
    assert spans(plan_chunks(3 * SR, frame_length=1)) == [(0, 1), (1, 2), (2, 3)]
    assert [c.index for c in plan_chunks(5 * SR)] == [0, 1, 2]


def test_plan_chunks_regions():
    assert spans(plan_chunks(10 * SR, start_region=1, end_region=5)) == [(1, 3), (3, 5)]
    assert spans(plan_chunks(10 * SR, start_region=9)) == [(9, 10)]
    assert spans(plan_chunks(6 * SR, end_region=100)) == [(0, 2), (2, 4), (4, 6)]  # clipped to the audio
    assert spans(plan_chunks(10 * SR, start_region=0.5, end_region=3.0)) == [(0.5, 2.5), (1.0, 3.0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_length": 0.5}, "frame_length"),
        ({"frame_length": 5}, "frame_length"),
        ({"frame_length": float("nan")}, "frame_length"),
        ({"start_region": -1.0}, "non-negative"),
        ({"start_region": 10.0}, "past the end"),
        ({"start_region": 3.0, "end_region": 2.0}, "after start_region"),
        ({"start_region": 3.0, "end_region": 3.05}, "too short"),
    ],
)
def test_plan_chunks_rejects_bad_parameters(kwargs: dict[str, float], message: str):
    with pytest.raises(ValueError, match=message):
        plan_chunks(10 * SR, **kwargs)  # type: ignore[arg-type]


def test_plan_chunks_rejects_too_short_audio():
    with pytest.raises(ValueError, match="too short"):
        plan_chunks(800)


def test_windows_are_tiled_like_upstream():
    wave = np.arange(5 * SR, dtype=np.float32)
    chunks = plan_chunks(len(wave))
    wins = chunk_windows(wave, chunks)
    assert all(w.shape == (64600,) and w.dtype == np.float32 for w in wins)
    seg = wave[0 : 2 * SR]
    assert np.array_equal(wins[0], np.tile(seg, (1, int(64600 / len(seg)) + 1))[:, :64600][0])
    assert np.array_equal(wins[2][: 2 * SR], wave[3 * SR :])
    long = np.arange(70000, dtype=np.float32)
    assert np.array_equal(fit_window(long), long[:64600])
    with pytest.raises(ValueError):
        fit_window(np.zeros(0, dtype=np.float32))


def test_summarize_metrics():
    m = summarize([0.9, 0.8, 0.1])
    assert m == {
        "label": "fake",
        "score": ["0.90", "0.80", "0.10"],
        "consistency": "0.67",
        "aggregated_score": "0.600",
        "image": None,
    }
    r = summarize([0.2, 0.1, 0.05, 0.6])
    assert r["label"] == "real" and r["consistency"] == "0.75" and r["aggregated_score"] == "0.237"
    assert summarize([0.5])["label"] == "fake"  # threshold is inclusive
    assert summarize([0.6, 0.7], threshold=0.8)["label"] == "real"
    assert summarize(np.array([0.99, 0.98]))["consistency"] == "1.00"
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([0.3], threshold=1.5)


def test_p_fake_is_stable_softmax():
    assert p_fake_from_logits(np.array([0.0, 0.0])) == pytest.approx(0.5)
    assert p_fake_from_logits(np.array([7.707346, -8.505814])) == pytest.approx(1 - 9.093143e-08, abs=1e-9)
    assert p_fake_from_logits(np.array([-3.267356, 1.810545])) == pytest.approx(1 - 0.9938056, abs=1e-7)
    assert p_fake_from_logits(np.array([900.0, -900.0])) == 1.0
    assert p_fake_from_logits(np.array([-900.0, 900.0])) == 0.0


def test_check_window():
    assert check_window(np.zeros(100, dtype=np.float64)).shape == (64600,)
    assert check_window([0.1] * 70000).dtype == np.float32
    for bad in (np.zeros((2, 100)), np.zeros(0), np.array([0.1, np.nan]), "abc", None):
        with pytest.raises(ValueError):
            check_window(bad)


def test_surround_context_windows():
    wave = np.arange(10 * SR, dtype=np.float32)
    chunks = plan_chunks(len(wave))
    wins = chunk_windows(wave, chunks, context="surround")
    assert all(w.shape == (64600,) for w in wins)
    assert wins[0][0] == 0  # clamped at the start
    mid = (chunks[2].start + chunks[2].end) // 2
    assert wins[2][0] == mid - 32300  # centred on the chunk
    assert wins[-1][-1] == len(wave) - 1  # clamped at the end
    # stays inside the region; a region shorter than a window is tiled
    region_chunks = plan_chunks(len(wave), start_region=1.0, end_region=3.0)
    (w,) = chunk_windows(wave, region_chunks[:1], context="surround", region=(SR, 3 * SR))
    assert np.array_equal(w, fit_window(wave[SR : 3 * SR]))
    with pytest.raises(ValueError, match="context"):
        chunk_windows(wave, chunks, context="loop")
