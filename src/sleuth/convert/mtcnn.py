"""Build the three MTCNN stages (Zhang et al. 2016) as ONNX graphs from PyTorch state dicts.

The weights are ``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` shipped in the ``facenet-pytorch`` wheel
(``facenet_pytorch/data/``). They are plain state dicts; torch is needed only to unpickle them
(imported lazily here, at conversion time). The graphs are written with ``onnx.helper``.

Graph contracts (all inputs float32 NCHW RGB, normalised as ``(x - 127.5) / 128``):

* ``pnet.onnx``: ``input [N,3,H,W]`` (fully convolutional) -> ``prob [N,2,h,w]`` (softmax over
  {background, face}) and ``reg [N,4,h,w]`` (box offsets), stride 2, 12x12 receptive field;
* ``rnet.onnx``: ``input [N,3,24,24]`` -> ``prob [N,2]``, ``reg [N,4]``;
* ``onet.onnx``: ``input [N,3,48,48]`` -> ``prob [N,2]``, ``reg [N,4]``, ``landmarks [N,10]``
  (5 x coordinates then 5 y coordinates, relative to the box).

The dense layers of R/O-Net were trained on features flattened in (W, H, C) order, so the graph
transposes NCHW -> NWHC before flattening.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.convert.mesonet import GraphBuilder


class _Builder(GraphBuilder):
    def __init__(self, sd: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.sd = sd

    def conv_prelu(self, x: str, name: str, prelu: str | None) -> str:
        y = self.conv(x, self.sd[f"{name}.weight"], self.sd[f"{name}.bias"])
        if prelu is None:
            return y
        slope = self.sd[f"{prelu}.weight"].astype(np.float32).reshape(-1, 1, 1)
        return self.op("PRelu", [y, self.const(slope, "prelu")])

    def pool(self, x: str, k: int) -> str:
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[2, 2], ceil_mode=1)

    def linear(self, x: str, name: str, out: str | None = None) -> str:
        w = self.const(self.sd[f"{name}.weight"].T.astype(np.float32), "lin_w")
        b = self.const(self.sd[f"{name}.bias"].astype(np.float32), "lin_b")
        return self.op("Add", [self.op("MatMul", [x, w]), b], out=out)

    def linear_prelu(self, x: str, name: str, prelu: str) -> str:
        slope = self.sd[f"{prelu}.weight"].astype(np.float32)
        return self.op("PRelu", [self.linear(x, name), self.const(slope, "prelu")])

    def flatten_whc(self, x: str) -> str:
        return self.op("Flatten", [self.op("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)


def _io(names: list[tuple[str, list[Any]]]) -> list[Any]:
    from onnx import TensorProto, helper

    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in names]


def build_pnet(sd: Mapping[str, np.ndarray]) -> Any:
    b = _Builder(sd)
    x = b.pool(b.conv_prelu("input", "conv1", "prelu1"), 2)
    x = b.conv_prelu(x, "conv2", "prelu2")
    x = b.conv_prelu(x, "conv3", "prelu3")
    b.op("Softmax", [b.conv_prelu(x, "conv4_1", None)], out="prob", axis=1)
    b.op("Identity", [b.conv_prelu(x, "conv4_2", None)], out="reg")
    return b.model(
        _io([("input", ["N", 3, "H", "W"])]),
        _io([("prob", ["N", 2, "h", "w"]), ("reg", ["N", 4, "h", "w"])]),
        "mtcnn_pnet",
    )


def build_rnet(sd: Mapping[str, np.ndarray]) -> Any:
    b = _Builder(sd)
    x = b.pool(b.conv_prelu("input", "conv1", "prelu1"), 3)
    x = b.pool(b.conv_prelu(x, "conv2", "prelu2"), 3)
    x = b.conv_prelu(x, "conv3", "prelu3")
    h = b.linear_prelu(b.flatten_whc(x), "dense4", "prelu4")
    b.op("Softmax", [b.linear(h, "dense5_1")], out="prob", axis=1)
    b.linear(h, "dense5_2", out="reg")
    return b.model(_io([("input", ["N", 3, 24, 24])]), _io([("prob", ["N", 2]), ("reg", ["N", 4])]), "mtcnn_rnet")


def build_onet(sd: Mapping[str, np.ndarray]) -> Any:
    b = _Builder(sd)
    x = b.pool(b.conv_prelu("input", "conv1", "prelu1"), 3)
    x = b.pool(b.conv_prelu(x, "conv2", "prelu2"), 3)
    x = b.pool(b.conv_prelu(x, "conv3", "prelu3"), 2)
    x = b.conv_prelu(x, "conv4", "prelu4")
    h = b.linear_prelu(b.flatten_whc(x), "dense5", "prelu5")
    b.op("Softmax", [b.linear(h, "dense6_1")], out="prob", axis=1)
    b.linear(h, "dense6_2", out="reg")
    b.linear(h, "dense6_3", out="landmarks")
    return b.model(
        _io([("input", ["N", 3, 48, 48])]),
        _io([("prob", ["N", 2]), ("reg", ["N", 4]), ("landmarks", ["N", 10])]),
        "mtcnn_onet",
    )


def _load_state_dict(path: Path) -> dict[str, np.ndarray]:
    import torch  # build-time only

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter: artefacts ``pnet``/``rnet``/``onet`` (.pt) -> three ONNX files."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    produced: dict[str, Path] = {}
    for stage, build in (("pnet", build_pnet), ("rnet", build_rnet), ("onet", build_onet)):
        model = build(_load_state_dict(Path(artefacts[stage])))
        out = out_dir / f"{stage}.onnx"
        tmp = out.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp))
        tmp.replace(out)
        produced[f"{stage}_onnx"] = out
    return produced
