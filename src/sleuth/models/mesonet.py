"""MesoNet face-forgery classifier (Meso4 / MesoInception4) on ONNX Runtime.

Input path (pinned by the reference outputs): PIL ``convert('RGB')``, ``resize((256, 256), NEAREST)``
when not already 256x256, ``float32 * float32(1/255)``, NHWC. The network outputs P(real);
our ``score`` is P(fake) = 1 - P(real).

One loader serves a single variant (artefact ``onnx``) or an ensemble (artefacts ``onnx_<member>``;
the ensemble's P(real) is the mean of its members' P(real)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.images import open_image

INPUT_SIZE = 256
_RESCALE = np.float32(1 / 255)


def preprocess_face(item: Any) -> np.ndarray:
    """bytes / PIL image / HxWx3 uint8 array -> float32 ``[256, 256, 3]`` in [0, 1]."""
    from PIL import Image

    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ValueError("expected an HxWx3 uint8 RGB array")
        im = Image.fromarray(item) if item.shape[:2] != (INPUT_SIZE, INPUT_SIZE) else None
        arr = item
    else:
        im = open_image(item).convert("RGB")
    if im is not None:
        if im.size != (INPUT_SIZE, INPUT_SIZE):
            im = im.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.NEAREST)
        arr = np.asarray(im)
    return arr.astype(np.float32) * _RESCALE


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x.astype(np.float64))))


class MesoNet(Model[Any, np.ndarray, np.ndarray, dict[str, Any]]):
    """``__call__([face_crop, ...])`` -> ``[{"p_real", "score", "logits": {member: logit}}]``."""

    name = "mesonet"
    max_batch_size = 32

    def __init__(self) -> None:
        self.members: dict[str, Any] = {}

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        paths = {k: v for k, v in artefacts.items() if k == "onnx" or k.startswith("onnx_")}
        if not paths:
            raise ModelError("mesonet: no converted 'onnx' artefact")
        self.members = {  # no arena: the occlusion heatmap runs large batches
            (k[5:] if k.startswith("onnx_") else "model"): create_session(p, providers, cpu_arena=False)
            for k, p in sorted(paths.items())
        }

    def preprocess(self, item: Any) -> np.ndarray:
        return preprocess_face(item)

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One row per input: the members' logits (``[M]`` float64, member order = sorted names)."""
        if not self.members:
            raise ModelError("mesonet: load() first")
        if not inputs:
            return []
        x = np.ascontiguousarray(np.stack(inputs), dtype=np.float32)
        cols = [sess.run(["logit"], {"input": x})[0][:, 0].astype(np.float64) for sess in self.members.values()]
        logits = np.stack(cols, axis=1)
        return list(logits)

    def postprocess(self, raw: np.ndarray, prepared: np.ndarray) -> dict[str, Any]:
        p_members = _sigmoid(raw)
        p_real = float(p_members.mean())
        return {
            "p_real": p_real,
            "score": 1.0 - p_real,
            "logits": {name: float(v) for name, v in zip(self.members, raw, strict=True)},
        }

    def score_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """P(fake) for a list of uint8 crops (batched); empty list -> empty array."""
        out: list[float] = []
        for r in self(list(crops)):
            out.append(r["score"])
        return np.asarray(out, dtype=np.float64)
