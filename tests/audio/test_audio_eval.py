"""Does the detector separate real from synthetic speech? (shared set + espeak-ng clips)

Protocol (upstream's): one 64600-sample window per file (first 4.04 s, shorter files
tiled), P(fake) per model, rank-based AUC with fakes as positives. Measured on the
40 LibriSpeech reals vs 26 TTS fakes (+3 espeak-ng clips made here): AASIST 0.998,
AASIST-L 0.985, RawGAT-ST 1.000, AASIST+RawGAT-ST mean 0.999. The bound 0.9 leaves room
for runtime noise, yet fails on a broken model (chance = 0.5).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sleuth.media.audio import decode_audio, fit_window
from sleuth.pipelines.audio import detect_audio

from .conftest import AUDIO, MODEL_NAMES, audio_manifest, has_espeak, needs_data

pytestmark = needs_data

AUC_BOUND = 0.9
ESPEAK_LINES = [
    ("en-us", "The committee will publish its final report on the river survey next spring."),
    ("en+f3", "Please leave your message after the tone, and we will call you back soon."),
    ("en-gb+m2", "Seven small boats crossed the harbour before the storm arrived in the evening."),
]


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties count 1/2 (Mann-Whitney U)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("AUC needs both classes")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, dtype=np.float64)
    sorted_v = allv[order]
    i = 0
    while i < allv.size:  # average ranks over ties
        j = i
        while j + 1 < allv.size and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def test_rank_auc():
    assert rank_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert rank_auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert rank_auc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5
    assert rank_auc(np.array([0.3, 0.9]), np.array([0.5, 0.1])) == 0.75


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, np.ndarray]]:
    """(id, label, 64600-sample window) for the shared set plus espeak-ng clips if available."""
    items = []
    for rec in audio_manifest():
        wave, _ = decode_audio(AUDIO / rec["path"])
        items.append((rec["path"], rec["label"], fit_window(wave)))
    if has_espeak:
        d = tmp_path_factory.mktemp("espeak")
        for i, (voice, text) in enumerate(ESPEAK_LINES):
            out = d / f"espeak_{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, timeout=60)
            wave, _ = decode_audio(out)
            items.append((f"espeak-ng:{voice}", "fake", fit_window(wave)))
    return items


@pytest.fixture(scope="module")
def eval_scores(detectors: dict[str, Any], eval_set) -> dict[str, np.ndarray]:
    windows = [w for _, _, w in eval_set]
    return {name: np.asarray(detectors[name](windows)) for name in MODEL_NAMES}


def test_detectors_separate_real_from_synthetic(eval_set, eval_scores: dict[str, np.ndarray]):
    labels = np.array([lab for _, lab, _ in eval_set])
    fake, real = labels == "fake", labels == "real"
    n_espeak = sum(1 for i, _, _ in eval_set if i.startswith("espeak-ng:"))
    systems = dict(eval_scores)
    systems["aasist+rawgat-st"] = (eval_scores["aasist"] + eval_scores["rawgat-st"]) / 2
    systems["all three"] = np.mean([eval_scores[n] for n in MODEL_NAMES], axis=0)
    print(f"\n{int(fake.sum())} fake ({n_espeak} espeak-ng made here) vs {int(real.sum())} real, first window:")
    aucs = {}
    for name, s in systems.items():
        aucs[name] = rank_auc(s[fake], s[real])
        acc = float(np.mean((s >= 0.5) == fake))
        print(
            f"  {name:18s} AUC {aucs[name]:.3f}  acc@0.5 {acc:.3f}  "
            f"reals flagged {int((s[real] >= 0.5).sum())}/{int(real.sum())}  "
            f"fakes missed {int((s[fake] < 0.5).sum())}/{int(fake.sum())}"
        )
    for name, a in aucs.items():
        assert a > AUC_BOUND, (name, a)
    if n_espeak:
        esp = np.array([i.startswith("espeak-ng:") for i, _, _ in eval_set])
        assert (eval_scores["aasist"][esp] >= 0.5).all()


def test_detect_audio_end_to_end(detectors: dict[str, Any]):
    """Default pipeline (2 s frames) on a clear fake and a clear real recording."""
    aasist = detectors["aasist"]
    fake = detect_audio(aasist, (AUDIO / "fake/flite/flite_slt_1.wav").read_bytes(), "flite_slt_1.wav")
    assert fake.metrics["label"] == "fake"
    assert set(fake.metrics) == {"label", "score", "consistency", "aggregated_score", "image"}
    assert all(isinstance(s, str) for s in fake.metrics["score"])
    assert len(fake.metrics["score"]) == len(fake.chunks) >= 2
    assert fake.chunks[0]["start"] == 0.0 and fake.chunks[0]["end"] == 2.0
    assert float(fake.metrics["aggregated_score"]) > 0.9

    real_path = AUDIO / "real/2609/2609-156975-0001.flac"
    for context in ("tile", "surround"):
        real = detect_audio(aasist, real_path, context=context)
        assert real.metrics["label"] == "real", (context, real.metrics)  # measured 0.034 / 0.003
        assert float(real.metrics["aggregated_score"]) < 0.2

    # a region with an ensemble: chunk spans, per-model scores, mean of the members
    ens = detect_audio([aasist, detectors["rawgat-st"]], real_path, start_region=1.0, end_region=4.5)
    assert [(c["start"], c["end"]) for c in ens.chunks] == [(1.0, 3.0), (2.5, 4.5)]
    assert set(ens.per_model) == {"aasist", "rawgat-st"}
    expected = np.mean([ens.per_model["aasist"], ens.per_model["rawgat-st"]], axis=0)
    assert np.allclose([c["score"] for c in ens.chunks], expected)
    assert ens.metrics["aggregated_score"] == f"{expected.mean():.3f}"


def test_bad_media_through_the_pipeline(detectors: dict[str, Any], tmp_path: Path):
    with pytest.raises(ValueError):
        detect_audio(detectors["aasist"], b"not audio at all" * 100, "x.mp3")
    with pytest.raises(ValueError, match="frame_length"):
        detect_audio(detectors["aasist"], AUDIO / "fake/flite/flite_slt_1.wav", frame_length=8)
