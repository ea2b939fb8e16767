"""Build-time: our PyTorch definition of RawGAT-ST (``mul`` fusion) and its ONNX export.

RawGAT-ST (Tak et al., ASVspoof 2021 workshop; checkpoint from
``eurecom-asp/RawGAT-ST-antispoofing``, MIT) shares AASIST's fixed sinc front end
(bit-identical filterbank), then:

1. two independent 6-block residual encoders over the same (1, 23, 21490) image;
2. spectral branch: max |.| over time of encoder 1 -> 23 nodes -> graph attention (64 -> 32)
   -> top-k pool to 14 nodes -> Linear over the node axis (14 -> 12);
3. temporal branch: max |.| over frequency of encoder 2 -> 29 nodes -> graph attention
   -> pool to 23 nodes -> Linear over the node axis (23 -> 12);
4. fusion by element-wise multiplication -> 12 nodes of 32 features -> graph attention
   (32 -> 16) -> pool to 7 nodes -> Linear(16 -> 1) per node (the 7-d "penultimate") ->
   Linear(7 -> 2) logits, index 0 = spoof, index 1 = bona fide.

The node-axis projections hard-code the node counts, so the network only accepts windows of
about 64600 samples; we always feed exactly 64600. Pools keep ``max(int(N*ratio), 2)`` nodes
and graph attention has no temperature.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sleuth.convert.aasist import NB_SAMP, export_onnx, load_state_dict, torch_blocks

#: Helper modules whose code shapes this converter's output (the catalog re-converts when they change).
FINGERPRINT_MODULES = ("sleuth.convert.aasist", "sleuth.convert.onnx_export")

RAWGAT_CONFIG: dict[str, Any] = {
    "nb_samp": NB_SAMP,
    "out_channels": 70,
    "first_conv": 128,
    "filts": [32, [32, 32], [32, 64], [64, 64]],
}


@functools.cache
def _rawgat_class() -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    blocks = torch_blocks()

    def encoder(filts: list[Any]) -> nn.Sequential:
        specs = [filts[1], filts[1], filts[2], filts[3], filts[3], filts[3]]
        return nn.Sequential(
            *[
                nn.Sequential(blocks.ResBlock(c_in, c_out, first=(i == 0), rawgat=True))
                for i, (c_in, c_out) in enumerate(specs)
            ]
        )

    class RawGatST(nn.Module):
        """``forward(wave (B, 64600)) -> (logits (B, 2), penultimate (B, 7))``."""

        def __init__(self, cfg: Mapping[str, Any]) -> None:
            super().__init__()
            filts = cfg["filts"]
            c_last = filts[-1][-1]
            self.front = blocks.SincFrontEnd(cfg["out_channels"], cfg["first_conv"])
            self.first_bn = nn.BatchNorm2d(1)
            self.encoder1 = encoder(filts)
            self.encoder2 = encoder(filts)
            self.GAT_layer1 = blocks.GraphAttention(c_last, 32)
            self.pool1 = blocks.GraphPool(0.64, 32, min_nodes=2)
            self.GAT_layer2 = blocks.GraphAttention(c_last, 32)
            self.pool2 = blocks.GraphPool(0.81, 32, min_nodes=2)
            self.GAT_layer3 = blocks.GraphAttention(32, 16)
            self.pool3 = blocks.GraphPool(0.64, 16, min_nodes=2)
            self.proj1 = nn.Linear(14, 12)
            self.proj2 = nn.Linear(23, 12)
            self.proj = nn.Linear(16, 1)
            self.proj_node = nn.Linear(7, 2)

        def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = F.selu(self.first_bn(self.front(wave)))
            spectral = self.encoder1(x).abs().amax(dim=3).transpose(1, 2)  # (B, 23, 64)
            spectral = self.pool1(self.GAT_layer1(spectral))  # (B, 14, 32)
            spectral = self.proj1(spectral.transpose(1, 2))  # (B, 32, 12)
            temporal = self.encoder2(x).abs().amax(dim=2).transpose(1, 2)  # (B, 29, 64)
            temporal = self.pool2(self.GAT_layer2(temporal))  # (B, 23, 32)
            temporal = self.proj2(temporal.transpose(1, 2))  # (B, 32, 12)
            fused = (spectral * temporal).transpose(1, 2)  # (B, 12, 32)
            fused = self.pool3(self.GAT_layer3(fused))  # (B, 7, 16)
            penultimate = self.proj(fused).squeeze(-1)  # (B, 7)
            return self.proj_node(penultimate), penultimate

    return RawGatST


def build_torch_model(weights: str | Path) -> Any:
    """Our torch RawGAT-ST with the ``mul`` checkpoint loaded (strict), in eval mode."""
    model = _rawgat_class()(RAWGAT_CONFIG)
    model.load_state_dict(load_state_dict(weights), strict=True)
    return model.eval()


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter for ``rawgat-st``: ``weights`` (.pth) -> ``model.onnx``."""
    model = build_torch_model(artefacts["weights"])
    return {"onnx": export_onnx(model, Path(out_dir) / "model.onnx", embedding_name="penultimate")}
