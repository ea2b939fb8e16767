"""Build-time: sleuth's own YOLOv5 (P5, P6) and YOLO11 detection networks, built from a checkpoint's architecture.

* :class:`YoloV5` - the YOLOv5 v6+ layer vocabulary (``Conv``, ``C3``, ``SPPF``, ``Upsample``,
  ``Concat``) and the anchor-based head :class:`V5Detect`: per level a 1x1 conv to
  ``anchors x (5 + classes)``, sigmoid, ``xy = (2 s - 0.5 + cell) * stride``,
  ``wh = (2 s)^2 * anchor``; output ``[N, A, 5 + C]`` (``cx, cy, w, h, obj, cls..``) in input
  pixels, levels in order, anchors then rows then columns within a level. MegaDetector v5 and
  MDv1000 redwood are the 4-level P6 variant (strides 8..64, 1280 px), spruce the 3-level P5 one.
* :class:`Yolo11` - ``Conv``, ``C3k2``, ``SPPF``, ``C2PSA``, ``Upsample``, ``Concat`` and the
  anchor-free head :class:`V8Detect` (box branch with a 16-bin distribution per side decoded by
  its expectation, class branch with depth-wise convs); output ``[N, 4 + C, A]``
  (``cx, cy, w, h, cls..``), anchor points at cell centres.

``forward(x)`` returns ``(decoded, raw)`` where ``raw`` is the per-level head output before any
sigmoid or decode (what the golden tests compare); :func:`export_module` wraps the decoded
output only. The grids are computed from the input's shape, so one ONNX graph takes any input
size that is a multiple of the largest stride.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sleuth.convert.yolo_layers import (
    C2PSA,
    C3,
    SPPF,
    C3k2,
    Concat,
    ConvBlock,
    Upsample,
    build_layers,
)

__all__ = ["V5Detect", "V8Detect", "Yolo11", "YoloV5", "export_module"]


class V5Detect(nn.Module):
    def __init__(
        self, nc: int, anchors: Sequence[Sequence[float]], ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        super().__init__()
        self.nc, self.no, self.nl = nc, nc + 5, len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.zeros(self.nl, self.na, 2))  # grid units, from the checkpoint
        self.strides = [float(s) for s in strides]
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out, raw = [], []
        anchors: torch.Tensor = self.anchors  # type: ignore[assignment]
        for i, x in enumerate(xs):
            p = self.m[i](x)
            bs, _, ny, nx = p.shape
            p = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(p)
            s = p.sigmoid()
            gy = torch.arange(ny, dtype=p.dtype).view(1, 1, ny, 1, 1).expand(1, self.na, ny, nx, 1)
            gx = torch.arange(nx, dtype=p.dtype).view(1, 1, 1, nx, 1).expand(1, self.na, ny, nx, 1)
            cell = torch.cat((gx, gy), 4) - 0.5
            stride = self.strides[i]
            xy = (s[..., :2] * 2 + cell) * stride
            wh = (s[..., 2:4] * 2) ** 2 * (anchors[i] * stride).view(1, self.na, 1, 1, 2)
            out.append(torch.cat((xy, wh, s[..., 4:]), 4).view(bs, -1, self.no))
        return torch.cat(out, 1), raw


class _DFL(nn.Module):
    """The box branch's expectation over ``reg_max`` bins: a fixed 1x1 conv (weights 0..reg_max-1 in the checkpoint)."""

    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)


class V8Detect(nn.Module):
    def __init__(
        self, nc: int, ch: Sequence[int], strides: Sequence[float], reg_max: int = 16, dw: bool = True
    ) -> None:
        super().__init__()
        self.nc, self.nl, self.reg_max = nc, len(ch), reg_max
        self.strides = [float(s) for s in strides]
        c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(ConvBlock(c, c2, 3), ConvBlock(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for c in ch
        )

        def cls_branch(c: int) -> nn.Sequential:
            if not dw:
                return nn.Sequential(ConvBlock(c, c3, 3), ConvBlock(c3, c3, 3), nn.Conv2d(c3, nc, 1))
            return nn.Sequential(
                nn.Sequential(ConvBlock(c, c, 3, g=math.gcd(c, c)), ConvBlock(c, c3, 1)),
                nn.Sequential(ConvBlock(c3, c3, 3, g=c3), ConvBlock(c3, c3, 1)),
                nn.Conv2d(c3, nc, 1),
            )

        self.cv3 = nn.ModuleList(cls_branch(c) for c in ch)
        self.dfl = _DFL(reg_max)

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        bs = xs[0].shape[0]
        raw = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        flat = torch.cat([r.view(bs, 4 * self.reg_max + self.nc, -1) for r in raw], 2)
        box, cls = flat.split((4 * self.reg_max, self.nc), 1)
        a = box.shape[2]
        dist = self.dfl.conv(box.view(bs, 4, self.reg_max, a).transpose(2, 1).softmax(1)).view(bs, 4, a)
        points, strides = [], []
        for i, x in enumerate(xs):
            h, w = x.shape[2], x.shape[3]
            sy = torch.arange(h, dtype=x.dtype) + 0.5
            sx = torch.arange(w, dtype=x.dtype) + 0.5
            yy, xx = torch.meshgrid(sy, sx, indexing="ij")
            points.append(torch.stack((xx, yy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), self.strides[i], dtype=x.dtype))
        anchor = torch.cat(points).transpose(0, 1).unsqueeze(0)
        stride = torch.cat(strides).transpose(0, 1)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = anchor - lt, anchor + rb
        boxes = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((boxes, cls.sigmoid()), 1), raw


class _Graph(nn.Module):
    """Layers run in order; each reads the outputs its ``from`` indices name."""

    def __init__(self, layers: list[nn.Module], froms: list[list[int]]) -> None:
        super().__init__()
        self.model = nn.ModuleList(layers)
        self.froms = froms
        self.keep = {j for f in froms for j in f if j >= 0}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs: dict[int, torch.Tensor] = {}
        y: Any = x
        for i, layer in enumerate(self.model):
            f = self.froms[i]
            if isinstance(layer, Concat | V5Detect | V8Detect):
                inp: Any = [y if j == i - 1 else outs[j] for j in f]
            else:
                inp = y if f == [i - 1] or i == 0 else outs[f[0]]
            y = layer(inp)
            if i in self.keep:
                outs[i] = y
        return y


def _upsample(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
    size, scale, mode = (list(args) + [None, 2, "nearest"][len(args) :])[:3]
    size = None if size in (None, "None") else int(size)  # the config's YAML spells null "None"
    return Upsample(size=size, scale_factor=None if size else float(scale), mode=str(mode)), cin[0]


def _conv(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
    rest = list(args[1:])
    k, s, p = (rest + [1, 1, None][len(rest) :])[:3]
    return ConvBlock(cin[0], c2, int(k), int(s), None if p is None else int(p)), c2


def _concat(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
    return Concat(), sum(cin)


def _sppf(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
    return SPPF(cin[0], c2, int(args[1]) if len(args) > 1 else 5), c2


class YoloV5(_Graph):
    """YOLOv5 (v6+) from a checkpoint's ``yaml`` dict; ``strides`` from the checkpoint's ``stride``."""

    def __init__(self, arch: Mapping[str, Any], strides: Sequence[float]) -> None:
        nc = int(arch["nc"])

        def c3(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
            shortcut = bool(args[1]) if len(args) > 1 else True
            return C3(cin[0], c2, n, shortcut), c2

        def detect(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
            anchors = arch["anchors"]
            if isinstance(anchors, int):
                raise ValueError("auto-anchor YOLOv5 configs (anchors = N) are not supported")
            return V5Detect(nc, anchors, cin, strides), 0

        factories = {"Conv": _conv, "C3": c3, "SPPF": _sppf, "Upsample": _upsample, "Concat": _concat, "Detect": detect}
        layers, froms, _ = build_layers(arch, factories, float(arch["depth_multiple"]), float(arch["width_multiple"]))
        super().__init__(layers, froms)


class Yolo11(_Graph):
    """YOLO11 from a checkpoint's ``yaml`` dict (``scales`` + ``scale``); ``dw``: depth-wise class branch."""

    def __init__(self, arch: Mapping[str, Any], strides: Sequence[float], dw: bool = True) -> None:
        nc = int(arch["nc"])
        scale = arch.get("scale") or next(iter(arch["scales"]))
        depth, width, max_ch = arch["scales"][scale]
        big = scale in ("m", "l", "x")

        def c3k2(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
            c3k = True if big else (bool(args[1]) if len(args) > 1 else False)
            e = float(args[2]) if len(args) > 2 else 0.5
            return C3k2(cin[0], c2, n, c3k, e), c2

        def c2psa(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
            return C2PSA(cin[0], c2, n), c2

        def detect(cin: list[int], c2: int, n: int, args: Sequence[Any]) -> tuple[nn.Module, int]:
            return V8Detect(nc, cin, strides, int(arch.get("reg_max", 16)), dw), 0

        factories = {
            "Conv": _conv,
            "C3k2": c3k2,
            "SPPF": _sppf,
            "C2PSA": c2psa,
            "Upsample": _upsample,
            "Concat": _concat,
            "Detect": detect,
        }
        layers, froms, _ = build_layers(arch, factories, float(depth), float(width), int(max_ch))
        super().__init__(layers, froms)


class _DecodedOnly(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def export_module(net: nn.Module) -> nn.Module:
    """``net`` with only the decoded output (what the ONNX graph returns)."""
    return _DecodedOnly(net).eval()
