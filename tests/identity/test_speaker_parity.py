"""Our speaker encoder (definition, ONNX export, numpy mel front end) against the upstream Resemblyzer package.

The golden outputs (tests/identity/golden/resemblyzer.json) were made by scripts/golden/resemblyzer_golden.py with
the upstream package in a throwaway venv; this test never imports it. Given upstream's trimmed waveform (the
recorded kept windows), our mel frames and embeddings must match upstream's; end to end (our own energy VAD instead
of WebRTC's) the embeddings must stay close.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT.parent / "shared" / "data" / "audio"
GOLDEN = json.loads((Path(__file__).parent / "golden" / "resemblyzer.json").read_text())

pytestmark = [
    pytest.mark.skipif(not AUDIO.is_dir(), reason="../shared/data/audio not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


@pytest.fixture(scope="module")
def encoder():
    from sleuth.engine.registry import get_model

    return get_model("resemblyzer")


def _upstream_input(rec):
    from sleuth.media import speech
    from sleuth.media.audio import decode_audio

    wav, _sr = decode_audio(AUDIO / rec["path"])
    norm = speech.normalize_volume(wav)
    mask = np.zeros(len(norm) // speech.VAD_WINDOW, dtype=bool)
    for a, b in rec["kept_windows"]:
        mask[a:b] = True
    return wav, mask, speech.apply_window_mask(norm, mask)


@pytest.mark.parametrize("rec", GOLDEN["files"], ids=lambda r: Path(r["path"]).stem)
def test_front_end_and_model_match_upstream(encoder, rec) -> None:
    from sleuth.media import speech

    _wav, _mask, trimmed = _upstream_input(rec)
    assert len(trimmed) == rec["n_samples_trimmed"]
    mel = speech.mel_spectrogram(trimmed)[:3]
    ref = np.array(rec["mel_head"], dtype=np.float64)
    np.testing.assert_allclose(mel, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    assert len(speech.partial_mels(trimmed)) == rec["n_partials"]
    emb = encoder.embed_preprocessed(trimmed)
    gold = np.array(rec["embedding"], dtype=np.float32)
    assert emb.shape == (256,) and (emb >= 0).all()
    assert float(emb @ gold) >= 0.999
    assert np.abs(emb - gold).max() <= 1e-3


def test_end_to_end_with_our_vad_stays_close(encoder) -> None:
    """Our energy VAD keeps about the windows WebRTC's does (93 % of them on these files); the embedding barely
    moves: measured cosine 0.949-0.999, mean 0.989, the lowest on the shortest file (2 partials)."""
    from sleuth.media.audio import decode_audio

    cos = []
    for rec in GOLDEN["files"]:
        wav, _ = decode_audio(AUDIO / rec["path"])
        cos.append(float(encoder.embed(wav) @ np.array(rec["embedding"], dtype=np.float32)))
    assert min(cos) >= 0.94 and float(np.mean(cos)) >= 0.985, cos


def test_no_speech_is_refused(encoder) -> None:
    from sleuth.media.speech import NoSpeechError

    rng = np.random.default_rng(0)
    with pytest.raises(NoSpeechError):
        encoder.embed(np.zeros(32000, dtype=np.float32))
    with pytest.raises(NoSpeechError):
        encoder.embed((1e-5 * rng.standard_normal(8000)).astype(np.float32))  # 0.5 s of near silence
    with pytest.raises(ValueError):
        encoder.embed(np.zeros((2, 100), dtype=np.float32))


def test_vad_smoothing_is_the_documented_rule() -> None:
    from sleuth.media import speech

    flags = np.zeros(40, dtype=bool)
    flags[10:20] = True  # 10 voiced windows
    kept = speech.smooth_flags(flags)
    # moving average of 8 rounds half-voiced windows down; dilation adds 3 windows on each side
    idx = np.flatnonzero(kept)
    assert idx.min() >= 5 and idx.max() <= 24 and kept[10:20].all()
    assert not speech.smooth_flags(np.zeros(10, dtype=bool)).any()
