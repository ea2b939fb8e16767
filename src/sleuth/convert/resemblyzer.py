"""Build-time: our PyTorch definition of the Resemblyzer speaker encoder, and its export to ONNX.

The encoder (GE2E-trained d-vector network, checkpoint ``pretrained.pt`` in the ``resemblyzer`` wheel, Apache-2.0)
maps the 160 x 40 power-mel frames of a 1.6 s partial utterance (:mod:`sleuth.media.speech`) to a 256-d voice
embedding:

1. a 3-layer unidirectional LSTM, 40 -> 256 -> 256 -> 256, batch first, zero initial state;
2. the last layer's final hidden state -> Linear(256, 256) -> ReLU;
3. L2 normalisation (so an embedding is non-negative with unit norm).

An utterance's embedding is the L2-normalised mean of its partials' embeddings (done at serving time,
:class:`sleuth.models.speaker.SpeakerEncoder`). The checkpoint also holds the GE2E loss's ``similarity_weight`` /
``similarity_bias`` and the optimiser state, which inference does not use.

torch is imported lazily: serving never imports this module's torch parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sleuth.convert.onnx_export import trace_to_onnx

#: Helper modules whose code shapes this converter's output (the catalog re-converts when they change).
FINGERPRINT_MODULES = ("sleuth.convert.onnx_export",)

N_MELS = 40
HIDDEN = 256
EMBEDDING = 256
LAYERS = 3
PARTIAL_FRAMES = 160
OPSET = 17


def build_model() -> Any:
    import torch
    from torch import nn

    class SpeakerEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
            self.linear = nn.Linear(HIDDEN, EMBEDDING)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _out, (hidden, _cell) = self.lstm(mels)
            e = torch.relu(self.linear(hidden[-1]))
            return e / torch.linalg.vector_norm(e, dim=1, keepdim=True)

    return SpeakerEncoder()


def load_model(weights: Path) -> Any:
    """Our module with the checkpoint's LSTM and linear weights (strict on those, the loss terms ignored)."""
    import torch

    ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)
    state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else ckpt
    wanted = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
    model = build_model()
    model.load_state_dict(wanted, strict=True)
    model.eval()
    return model


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """``weights`` (pretrained.pt) -> ``speaker_encoder.onnx``: ``mels [B, 160, 40]`` -> ``embeds [B, 256]``."""
    import torch

    model = load_model(artefacts["weights"])
    dummy = torch.rand(2, PARTIAL_FRAMES, N_MELS)
    path = trace_to_onnx(
        model,
        dummy,
        out_dir / "speaker_encoder.onnx",
        input_names=["mels"],
        output_names=["embeds"],
        dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embeds": {0: "batch"}},
        opset=OPSET,
        metadata={"source": "resemblyzer==0.1.4:resemblyzer/pretrained.pt", "converter": "sleuth.convert.resemblyzer"},
    )
    return {"onnx": path}
