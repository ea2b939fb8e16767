"""Build-time: sleuth's own torch building blocks of the YOLOv5 / YOLO11 detectors.

Written from the architectures' published structure (YOLOv5 v6+ and YOLO11 papers/configs),
with attribute names that match the release checkpoints' ``state_dict`` keys so that
``load_state_dict(strict=True)`` proves the layout (``conv``/``bn`` in every convolution
block, ``cv1``.. and ``m`` in the CSP blocks). Nothing here is imported at serving time.

``build_layers`` reads a model's architecture dict (the ``yaml`` a checkpoint carries: layer
list ``[from, repeats, module, args]`` plus width/depth multiples) and returns the layer list
with, per layer, the indices it reads from. ``make_divisible`` and the repeat rounding follow
the published scaling rules (channels to a multiple of 8, ``round(n * depth)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "C2PSA",
    "C3",
    "C3k",
    "C3k2",
    "SPPF",
    "Attention",
    "Bottleneck",
    "Concat",
    "ConvBlock",
    "PSABlock",
    "make_divisible",
]


def make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


class ConvBlock(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> SiLU (or identity)."""

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two convolutions (``k1`` then ``k2``) with an identity shortcut when the shape allows."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 0.5, k1: int = 1, k2: int = 3) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = ConvBlock(c1, hidden, k1)
        self.cv2 = ConvBlock(hidden, c2, k2)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convolutions: ``cv3(cat(m(cv1 x), cv2 x))``."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, e: float = 0.5, k: int = 3) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = ConvBlock(c1, hidden, 1)
        self.cv2 = ConvBlock(c1, hidden, 1)
        self.cv3 = ConvBlock(2 * hidden, c2, 1)
        k1 = 1 if k == 3 and type(self) is C3 else k
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, k1, k) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    """C3 whose bottlenecks use ``k x k`` for both convolutions (YOLO11's inner block)."""


class C3k2(nn.Module):
    """YOLO11's faster CSP block: split ``cv1`` in two, chain ``n`` blocks on the second half, fuse all."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, shortcut: bool = True) -> None:
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = ConvBlock(c1, 2 * self.c, 1)
        self.cv2 = ConvBlock((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, shortcut) if c3k else Bottleneck(self.c, self.c, shortcut, 0.5, 3, 3)
            for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k x k`` max-pools, concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = ConvBlock(c1, hidden, 1)
        self.cv2 = ConvBlock(hidden * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, plus a depth-wise positional conv on the values."""

    def __init__(self, dim: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = ConvBlock(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = ConvBlock(dim, dim, 1, act=False)
        self.pe = ConvBlock(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention then a two-layer 1x1 feed-forward, each with a residual."""

    def __init__(self, c: int, num_heads: int) -> None:
        super().__init__()
        self.attn = Attention(c, num_heads)
        self.ffn = nn.Sequential(ConvBlock(c, 2 * c, 1), ConvBlock(2 * c, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """Split in two, run ``n`` PSA blocks on one half, fuse."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5) -> None:
        super().__init__()
        assert c1 == c2
        self.c = int(c1 * e)
        self.cv1 = ConvBlock(c1, 2 * self.c, 1)
        self.cv2 = ConvBlock(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class Concat(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class Upsample(nn.Upsample):
    """Nearest-neighbour upsampling (a plain ``nn.Upsample``; named for the layer table)."""


LayerFactory = Callable[[list[int], int, int, Sequence[Any]], tuple[nn.Module, int]]


def build_layers(
    arch: Mapping[str, Any],
    factories: Mapping[str, LayerFactory],
    depth: float,
    width: float,
    max_channels: int | None = None,
) -> tuple[list[nn.Module], list[list[int]], list[int]]:
    """The layers of ``arch`` (``backbone`` + ``head`` tables), each with its absolute input indices.

    ``factories[name](in_channels, out_channels, repeats, args)`` builds one layer type and returns
    ``(module, out_channels)``; convolution-like layers get their channel count scaled by
    ``width`` (capped at ``max_channels`` first) and their repeats by ``depth``.
    """
    table = list(arch.get("backbone", [])) + list(arch.get("head", []))
    layers: list[nn.Module] = []
    froms: list[list[int]] = []
    chans: list[int] = []
    for i, row in enumerate(table):
        f, n, name, args = row
        name = str(name).removeprefix("nn.")
        if name not in factories:
            raise ValueError(f"layer {i}: module {name!r} is not part of this architecture")
        src = [f] if isinstance(f, int) else list(f)
        idx = [i + s if s < 0 else s for s in src]
        cin = [3 if j < 0 else chans[j] for j in idx]
        reps = max(round(n * depth), 1) if n > 1 else n
        c2 = args[0] if args and isinstance(args[0], int) else 0
        if c2:
            c2 = make_divisible(min(c2, max_channels or c2) * width, 8)
        module, cout = factories[name](cin, c2, reps, list(args))
        layers.append(module)
        froms.append(idx)
        chans.append(cout)
    return layers, froms, chans
