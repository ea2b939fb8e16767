"""Build-time converter: zamba's MegadetectorLite checkpoint (YOLOX-tiny, 1 class) -> ONNX.

Our own YOLOX definition (CSPDarknet backbone + PAFPN neck + decoupled head), written from the
architecture's published structure, with parameter names that match the upstream checkpoint so
``load_state_dict(strict=True)`` proves the layout. Details that matter for parity:

* width 0.375 / depth 0.33 ("tiny"): stem 24 channels, CSP blocks with 1/3/3/1 bottlenecks,
  head width 96, 3 levels (strides 8/16/32, 80x80 + 40x40 + 20x20 = 8400 rows at 640 px);
* every BatchNorm has ``eps = 1e-3`` (the upstream model builder sets it; PyTorch's default 1e-5
  moves scores by up to 0.03);
* the exported graph takes any input height and width that are multiples of 32 (so
  letterboxed 4:3 frames run at 640x480 instead of 640x640) and ends before the grid decode:
  the ONNX output is ``[N, A, 6]`` = raw ``dx, dy, log w, log h``, then ``obj`` and ``cls``
  (both sigmoid), rows in level order (stride 8, 16, 32; ``A = 8400`` at 640x640). The ONNX
  metadata ``sleuth.output = raw`` says so; ``sleuth.models.mdlite`` does the grid decode.
  ``build_model()`` alone (the PyTorch module) keeps the decode in the graph;
* ``convert`` also writes ``model-int8.onnx``: the same graph quantized to INT8 (QDQ) from the
  shipped calibration table ``sleuth/data/calibration/mdlite-int8.json`` (see
  ``sleuth.convert.quantize``); the head's final 1x1 predictions, sigmoids and output
  reshapes stay FP32 (``int8_excluded_nodes``).

torch is imported lazily: this module is only used at build time (``sleuth models pull``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sleuth.convert.onnx_export import trace_to_onnx
from sleuth.convert.quantize import load_table, quantize_int8
from sleuth.engine.catalog import sha256_file

WEIGHTS_SHA256 = "31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0"
INPUT_SIZE = 640
NUM_CLASSES = 1
OPSET = 17

#: Helper modules whose code shapes this converter's output: editing them re-converts too.
FINGERPRINT_MODULES = ("sleuth.convert.quantize", "sleuth.convert.onnx_export")

#: sha256 of the shipped calibration table; editing the table means editing this line, which
#: changes this module's fingerprint, so cached conversions are redone.
CALIBRATION_SHA256 = "66744e20fd53d42ac3b354b847cf2dcb69bfd3aaef1b8c499f641360cc5a92f1"

__all__ = [
    "CALIBRATION_SHA256",
    "WEIGHTS_SHA256",
    "build_model",
    "calibration_table_path",
    "convert",
    "convert_fp32",
    "export_onnx",
    "int8_excluded_nodes",
    "load_checkpoint",
]


def build_model(
    num_classes: int = NUM_CLASSES, width: float = 0.375, depth: float = 0.33, decode_in_graph: bool = True
) -> Any:
    """Return an (untrained) YOLOX torch module with outputs ``[N, A, 5 + C]``.

    ``decode_in_graph``: boxes as ``cx, cy, w, h`` in input pixels (the grid decode runs in the
    module), else the head's raw regression ``(dx, dy, log w, log h)`` per anchor, rows in
    level order (stride 8, 16, 32), row-major within a level; ``obj`` and ``cls`` are sigmoid
    either way. The raw form has no shape-dependent constants, so its ONNX export takes any
    input height and width that are multiples of 32.
    """
    import torch
    from torch import nn

    bn_eps = 1e-3

    class ConvBnAct(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, s: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=bn_eps, momentum=0.03)
            self.act = nn.SiLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.bn(self.conv(x)))

    class Bottleneck(nn.Module):
        def __init__(self, c: int, shortcut: bool) -> None:
            super().__init__()
            self.conv1 = ConvBnAct(c, c, 1)
            self.conv2 = ConvBnAct(c, c, 3)
            self.add = shortcut

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(self.conv1(x))
            return y + x if self.add else y

    class CSP(nn.Module):
        """Split into two 1x1 branches, run bottlenecks on one, concatenate, fuse with 1x1."""

        def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True) -> None:
            super().__init__()
            hidden = int(cout * 0.5)
            self.conv1 = ConvBnAct(cin, hidden, 1)
            self.conv2 = ConvBnAct(cin, hidden, 1)
            self.conv3 = ConvBnAct(2 * hidden, cout, 1)
            self.m = nn.Sequential(*[Bottleneck(hidden, shortcut) for _ in range(n)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))

    class SPP(nn.Module):
        def __init__(self, cin: int, cout: int, ks: tuple[int, ...] = (5, 9, 13)) -> None:
            super().__init__()
            hidden = cin // 2
            self.conv1 = ConvBnAct(cin, hidden, 1)
            self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in ks])
            self.conv2 = ConvBnAct(hidden * (len(ks) + 1), cout, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv1(x)
            return self.conv2(torch.cat([x] + [m(x) for m in self.m], dim=1))

    class Focus(nn.Module):
        """Space-to-depth (2x2 pixel blocks -> channels), then a 3x3 conv."""

        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv = ConvBnAct(cin * 4, cout, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # channel order: (even row, even col), (odd row, even col), (even row, odd col), (odd, odd)
            parts = [x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]]
            return self.conv(torch.cat(parts, dim=1))

    class Darknet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = int(width * 64)
            d = max(round(depth * 3), 1)
            self.stem = Focus(3, c)
            self.dark2 = nn.Sequential(ConvBnAct(c, c * 2, 3, 2), CSP(c * 2, c * 2, d))
            self.dark3 = nn.Sequential(ConvBnAct(c * 2, c * 4, 3, 2), CSP(c * 4, c * 4, d * 3))
            self.dark4 = nn.Sequential(ConvBnAct(c * 4, c * 8, 3, 2), CSP(c * 8, c * 8, d * 3))
            self.dark5 = nn.Sequential(
                ConvBnAct(c * 8, c * 16, 3, 2), SPP(c * 16, c * 16), CSP(c * 16, c * 16, d, shortcut=False)
            )

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = self.dark2(self.stem(x))
            c3 = self.dark3(x)
            c4 = self.dark4(c3)
            c5 = self.dark5(c4)
            return c3, c4, c5

    class PAFPN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c3, c4, c5 = (int(256 * width), int(512 * width), int(1024 * width))
            n = round(3 * depth)
            self.backbone = Darknet()
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
            self.lateral_conv0 = ConvBnAct(c5, c4, 1)
            self.C3_p4 = CSP(2 * c4, c4, n, shortcut=False)
            self.reduce_conv1 = ConvBnAct(c4, c3, 1)
            self.C3_p3 = CSP(2 * c3, c3, n, shortcut=False)
            self.bu_conv2 = ConvBnAct(c3, c3, 3, 2)
            self.C3_n3 = CSP(2 * c3, c4, n, shortcut=False)
            self.bu_conv1 = ConvBnAct(c4, c4, 3, 2)
            self.C3_n4 = CSP(2 * c4, c5, n, shortcut=False)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            f3, f4, f5 = self.backbone(x)
            top5 = self.lateral_conv0(f5)
            m4 = self.C3_p4(torch.cat([self.upsample(top5), f4], 1))
            top4 = self.reduce_conv1(m4)
            out3 = self.C3_p3(torch.cat([self.upsample(top4), f3], 1))
            out4 = self.C3_n3(torch.cat([self.bu_conv2(out3), top4], 1))
            out5 = self.C3_n4(torch.cat([self.bu_conv1(out4), top5], 1))
            return out3, out4, out5

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hw = int(256 * width)
            chans = [int(256 * width), int(512 * width), int(1024 * width)]
            self.strides = (8, 16, 32)
            self.stems = nn.ModuleList([ConvBnAct(c, hw, 1) for c in chans])
            self.cls_convs = nn.ModuleList([nn.Sequential(ConvBnAct(hw, hw, 3), ConvBnAct(hw, hw, 3)) for _ in chans])
            self.reg_convs = nn.ModuleList([nn.Sequential(ConvBnAct(hw, hw, 3), ConvBnAct(hw, hw, 3)) for _ in chans])
            self.cls_preds = nn.ModuleList([nn.Conv2d(hw, num_classes, 1) for _ in chans])
            self.reg_preds = nn.ModuleList([nn.Conv2d(hw, 4, 1) for _ in chans])
            self.obj_preds = nn.ModuleList([nn.Conv2d(hw, 1, 1) for _ in chans])

        def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
            outs = []
            for k, (x, stride) in enumerate(zip(feats, self.strides, strict=True)):
                x = self.stems[k](x)
                cls = self.cls_preds[k](self.cls_convs[k](x))
                reg_feat = self.reg_convs[k](x)
                reg = self.reg_preds[k](reg_feat)
                obj = self.obj_preds[k](reg_feat)
                out = torch.cat([reg, obj.sigmoid(), cls.sigmoid()], 1).flatten(2).permute(0, 2, 1)
                if not decode_in_graph:
                    outs.append(out)
                    continue
                h, w = int(x.shape[-2]), int(x.shape[-1])
                ys, xs = torch.meshgrid(
                    torch.arange(h, dtype=out.dtype), torch.arange(w, dtype=out.dtype), indexing="ij"
                )
                grid = torch.stack([xs, ys], -1).reshape(1, -1, 2)
                xy = (out[..., :2] + grid) * stride
                wh = torch.exp(out[..., 2:4]) * stride
                outs.append(torch.cat([xy, wh, out[..., 4:]], -1))
            return torch.cat(outs, 1)

    class YOLOX(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = PAFPN()
            self.head = Head()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

    return YOLOX()


def load_checkpoint(path: str | Path, decode_in_graph: bool = True) -> Any:
    """Build YOLOX-tiny and load zamba's checkpoint (a dict with the state dict under ``model``)."""
    import torch

    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: no state dict found in the checkpoint")
    model = build_model(decode_in_graph=decode_in_graph)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def export_onnx(model: Any, out_path: Path, size: int = INPUT_SIZE) -> Path:
    """Export a ``decode_in_graph=False`` model: dynamic batch, height and width."""
    import torch

    return trace_to_onnx(
        model,
        torch.zeros(1, 3, size, size, dtype=torch.float32),
        out_path,
        input_names=["images"],
        output_names=["output"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 1: "anchors"}},
        opset=OPSET,
        metadata={"sleuth.output": "raw", "sleuth.strides": "8,16,32"},
    )


def int8_excluded_nodes(model_path: str | Path) -> list[str]:
    """Nodes kept in FP32: the head after its conv towers (1x1 predictions, sigmoids, reshapes, concat).

    Quantizing the concatenated ``[dx, dy, log w, log h, obj, cls]`` rows to 8 bits over one
    range would cost box precision for nothing: these nodes are a tiny part of the compute.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [
        n.name
        for n in model.graph.node
        if n.name.startswith("/head/") and "_convs" not in n.name and "/head/stems" not in n.name
    ]


def calibration_table_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "calibration" / "mdlite-int8.json"


def quantize_export(fp32: Path, out_path: Path, table_path: Path | None = None) -> Path:
    """INT8 copy of the FP32 export from the shipped calibration table (digest-checked)."""
    table_path = table_path or calibration_table_path()
    digest = sha256_file(table_path)
    if digest != CALIBRATION_SHA256:
        raise ValueError(f"{table_path}: sha256 {digest} is not the calibration table {CALIBRATION_SHA256}")
    table = load_table(table_path)
    return quantize_int8(fp32, out_path, table["ranges"], int8_excluded_nodes(fp32))


def convert_fp32(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter of ``mdlite-fp32``: ``{"weights": .pth}`` -> ``{"onnx": model.onnx}``."""
    src = Path(artefacts["weights"])
    digest = sha256_file(src)
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{src}: sha256 {digest} is not the MD-Lite checkpoint {WEIGHTS_SHA256}")
    model = load_checkpoint(src, decode_in_graph=False)
    return {"onnx": export_onnx(model, Path(out_dir).resolve() / "model.onnx")}


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter of ``mdlite``: ``{"onnx": model.onnx, "onnx_int8": model-int8.onnx}``."""
    fp32 = convert_fp32(artefacts, out_dir)["onnx"]
    return {"onnx": fp32, "onnx_int8": quantize_export(fp32, fp32.parent / "model-int8.onnx")}
