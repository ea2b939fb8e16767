"""AASIST / AASIST-L audio anti-spoofing on ONNX Runtime.

Each item is ONE window of 16 kHz mono audio as float32 in [-1, 1]. The network takes
exactly 64600 samples (4.04 s); :func:`fit_window` makes any window that length the way
the upstream data loader does: longer -> the first 64600 samples, shorter -> repeated
(``np.tile``) and cut, never zero-padded. Splitting a recording into windows, decoding and
resampling live in :mod:`sleuth.media.audio`.

Output per item: ``P(fake)`` as a Python float, from the 2 logits ``[spoof, bona fide]``:
``P(fake) = softmax(logits)[0] = 1 / (1 + exp(l_bonafide - l_spoof))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.audio import NB_SAMP, SAMPLE_RATE, fit_window

__all__ = ["NB_SAMP", "SAMPLE_RATE", "Aasist", "AasistL", "WaveformDetector", "check_window", "fit_window"]


def check_window(item: Any) -> np.ndarray:
    """Validate one window (1-D, finite, not empty) and return float32 ``[64600]``."""
    try:
        x = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audio window must be a 1-D float array: {exc}") from exc
    if x.ndim != 1:
        raise ValueError(f"audio window must be 1-D (mono samples), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("empty audio window")
    if not np.isfinite(x).all():
        raise ValueError("audio window contains NaN or infinite samples")
    return np.ascontiguousarray(fit_window(x))


def p_fake_from_logits(logits: np.ndarray) -> float:
    """softmax(logits)[0] computed stably in float64."""
    spoof, bona = float(logits[0]), float(logits[1])
    d = bona - spoof
    if d >= 0:
        e = float(np.exp(-d))
        return e / (1.0 + e)
    return 1.0 / (1.0 + float(np.exp(d)))


class WaveformDetector(Model[Any, np.ndarray, np.ndarray, float]):
    """Shared ORT wrapper: ``wave [B, 64600] -> logits [B, 2]``; result = P(fake).

    ``max_batch_size`` is small on CPU on purpose: the first conv block's activations are
    about 66 MB per window, so batches beyond 2 only thrash the cache (RawGAT-ST: 0.37 s per
    window at batch 1-2, 0.69 s at 4, 0.94 s at 8; docs/performance.md). With the CUDA
    provider active it is raised to ``GPU_BATCH``.
    """

    name = ""
    max_batch_size = 2
    GPU_BATCH = 16

    def __init__(self) -> None:
        self.session: Any = None
        self.embedding_output: str | None = None

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        path = artefacts.get("onnx")
        if path is None:
            raise ModelError(f"{self.name or type(self).__name__}: no converted 'onnx' artefact")
        try:
            self.session = create_session(path, providers, cpu_arena=False)  # large per-item activations
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.name}: cannot load {path}: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "wave":
            raise ModelError(f"{self.name}: {path} does not take a single 'wave' input")
        self.embedding_output = next((o.name for o in self.session.get_outputs() if o.name != "logits"), None)
        if "CUDAExecutionProvider" in self.session.get_providers():
            self.max_batch_size = self.GPU_BATCH

    def preprocess(self, item: Any) -> np.ndarray:
        return check_window(item)

    def logits(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Raw logits ``[N, 2]`` for already-checked windows (one ORT call)."""
        if self.session is None:
            raise ModelError(f"{self.name}: load() first")
        x = np.ascontiguousarray(np.stack(windows), dtype=np.float32)
        out = self.session.run(["logits"], {"wave": x})[0]
        return np.asarray(out, dtype=np.float32)

    def logits_and_embeddings(self, items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``[N, 2]`` and the penultimate embedding ``[N, D]`` (the graph's second output)."""
        if self.session is None:
            raise ModelError(f"{self.name}: load() first")
        if self.embedding_output is None:
            raise ModelError(f"{self.name}: the converted model has no embedding output")
        windows = [check_window(i) for i in items]
        lo, em = [], []
        step = max(1, self.max_batch_size)
        for a in range(0, len(windows), step):
            x = np.ascontiguousarray(np.stack(windows[a : a + step]), dtype=np.float32)
            out = self.session.run(["logits", self.embedding_output], {"wave": x})
            lo.append(np.asarray(out[0], dtype=np.float32))
            em.append(np.asarray(out[1], dtype=np.float32))
        if not lo:
            return np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(lo), np.concatenate(em)

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not inputs:
            return []
        return list(self.logits(inputs))

    def postprocess(self, raw: np.ndarray, prepared: np.ndarray) -> float:
        return p_fake_from_logits(raw)


class Aasist(WaveformDetector):
    """AASIST (297k parameters)."""

    name = "aasist"


class AasistL(WaveformDetector):
    """AASIST-L (85k parameters)."""

    name = "aasist-l"
