"""Voice embeddings on ONNX Runtime: the Resemblyzer speaker encoder (sleuth.convert.resemblyzer).

An item is a 16 kHz mono float waveform. :meth:`SpeakerEncoder.preprocess` normalises the volume, cuts long
silences and splits the result into 1.6 s partial utterances of mel frames (:mod:`sleuth.media.speech`);
the network embeds each partial (``mels [B, 160, 40] -> embeds [B, 256]``, L2-normed) and the item's embedding
is the L2-normalised mean of its partials' embeddings: a float32 ``[256]`` vector of unit norm whose entries are
all >= 0, so the cosine similarity of two embeddings lies in [0, 1].

Audio without speech raises :class:`sleuth.media.speech.NoSpeechError` (a ``ValueError``) from ``preprocess``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media import speech

EMBEDDING_DIM = 256
MAX_PARTIALS_PER_RUN = 64


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    if n == 0.0 or not np.isfinite(n):
        raise ValueError("cannot normalise a zero embedding")
    return np.asarray(v / n, dtype=np.float32)


class SpeakerEncoder(Model[Any, np.ndarray, np.ndarray, np.ndarray]):
    """``waveform -> [256]`` unit-norm voice embedding. ``predict_batch`` runs each item's partials."""

    name = "resemblyzer"
    max_batch_size = 4

    def __init__(self) -> None:
        self.session: Any = None

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        path = artefacts.get("onnx")
        if path is None:
            raise ModelError(f"{self.name}: no converted 'onnx' artefact")
        try:
            self.session = create_session(path, providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.name}: cannot load {path}: {exc}") from exc
        names = [i.name for i in self.session.get_inputs()]
        if names != ["mels"]:
            raise ModelError(f"{self.name}: {path} does not take a single 'mels' input (got {names})")

    def preprocess(self, item: Any) -> np.ndarray:
        wav = np.asarray(item, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"waveform must be 1-D (mono samples), got shape {wav.shape}")
        if not np.isfinite(wav).all():
            raise ValueError("waveform contains NaN or infinite samples")
        return speech.partial_mels(speech.preprocess(wav))

    def partial_embeddings(self, mels: np.ndarray) -> np.ndarray:
        """``[N, 160, 40]`` partial mel frames -> ``[N, 256]`` unit-norm embeddings."""
        if self.session is None:
            raise ModelError(f"{self.name}: load() first")
        outs = []
        for start in range(0, len(mels), MAX_PARTIALS_PER_RUN):
            chunk = np.ascontiguousarray(mels[start : start + MAX_PARTIALS_PER_RUN], dtype=np.float32)
            outs.append(np.asarray(self.session.run(["embeds"], {"mels": chunk})[0], dtype=np.float32))
        return np.concatenate(outs)

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.partial_embeddings(m) for m in inputs]

    def postprocess(self, raw: np.ndarray, prepared: np.ndarray) -> np.ndarray:
        return l2_normalize(raw.mean(axis=0))

    def embed_preprocessed(self, wav: np.ndarray) -> np.ndarray:
        """Embedding of a waveform that is already volume-normalised and trimmed (parity checks)."""
        return self.postprocess(self.partial_embeddings(speech.partial_mels(wav)), np.empty(0))

    def embed(self, wav: np.ndarray) -> np.ndarray:
        return self([wav])[0]
