"""Build-time converter: a MegaDetector release ``.pt`` (YOLOv5 or YOLO11) -> ONNX, with sleuth's own networks.

``sleuth models pull mdv5a.0.0`` (and redwood, spruce, larch, sorrel) runs :func:`convert` once
after the checkpoint is fetched and verified:

1. :func:`read_release` unpickles the file with :mod:`sleuth.convert.unpickle` (only the module
   classes of :data:`YOLOV5_CLASSES` / :data:`YOLO11_CLASSES` and torch's tensors; anything else
   is refused by name), takes the architecture dict (``model.yaml``), the strides, the class
   names and the weights (FP16 in the releases, cast to FP32);
2. builds :class:`~sleuth.convert.yolo_models.YoloV5` or :class:`~sleuth.convert.yolo_models.Yolo11`
   from that dict and loads the weights with ``strict=True`` (every key and shape must match),
   copying each BatchNorm's ``eps`` from the checkpoint;
3. traces it to ONNX (opset 17, dynamic batch/height/width, decoded head output) and records
   the layout in the ONNX metadata (``sleuth.output`` = ``yolov5`` / ``yolov8``,
   ``sleuth.stride``, ``sleuth.names``, ``sleuth.architecture``).

YOLOv9 (MDv1000 cedar) is not converted yet: its catalog entry is download-only and ``pull``
prints the manual export path. torch is imported lazily (the ``convert`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.convert.unpickle import CheckpointError, ModuleStub, iter_modules, load_checkpoint, state_dict

__all__ = ["YOLO11_CLASSES", "YOLOV5_CLASSES", "Release", "build_network", "convert", "read_release"]

OPSET = 17
FINGERPRINT_MODULES = (
    "sleuth.convert.onnx_export",
    "sleuth.convert.unpickle",
    "sleuth.convert.yolo_layers",
    "sleuth.convert.yolo_models",
)

#: The module classes a YOLOv5 release pickles (``models.yolo.Model`` is the pre-v6.2 name).
YOLOV5_CLASSES = (
    "models.yolo.Model",
    "models.yolo.DetectionModel",
    "models.yolo.Detect",
    "models.common.Conv",
    "models.common.C3",
    "models.common.Bottleneck",
    "models.common.SPPF",
    "models.common.Concat",
)
#: The module classes an ultralytics YOLO11 release pickles.
YOLO11_CLASSES = (
    "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.nn.modules.conv.Conv",
    "ultralytics.nn.modules.conv.DWConv",
    "ultralytics.nn.modules.conv.Concat",
    "ultralytics.nn.modules.block.C3k2",
    "ultralytics.nn.modules.block.C3k",
    "ultralytics.nn.modules.block.Bottleneck",
    "ultralytics.nn.modules.block.SPPF",
    "ultralytics.nn.modules.block.C2PSA",
    "ultralytics.nn.modules.block.PSABlock",
    "ultralytics.nn.modules.block.Attention",
    "ultralytics.nn.modules.block.DFL",
    "ultralytics.nn.modules.head.Detect",
    "ultralytics.utils.IterableSimpleNamespace",
)


@dataclass
class Release:
    path: Path
    family: str  # "yolov5" | "yolo11"
    arch: dict[str, Any]
    strides: list[float]
    names: list[str]
    weights: dict[str, Any]
    stub: ModuleStub
    dw_head: bool = True


def _names(raw: Any, nc: int) -> list[str]:
    if isinstance(raw, Mapping):
        return [str(raw.get(i, raw.get(str(i), i))) for i in range(nc)]
    if isinstance(raw, list | tuple):
        return [str(n) for n in raw]
    return [str(i) for i in range(nc)]


def read_release(path: str | Path) -> Release:
    """The architecture, strides, names and FP32 weights of a release checkpoint (restricted unpickling)."""
    p = Path(path)
    ckpt = load_checkpoint(p, YOLOV5_CLASSES + YOLO11_CLASSES)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{p}: expected a checkpoint dict, got {type(ckpt).__name__}")
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, ModuleStub):
        raise CheckpointError(f"{p}: the checkpoint holds no detection model under 'model' or 'ema'")
    if model.qualname in ("models.yolo.Model", "models.yolo.DetectionModel"):
        family = "yolov5"
    elif model.qualname == "ultralytics.nn.tasks.DetectionModel":
        family = "yolo11"
    else:
        raise CheckpointError(f"{p}: the checkpoint's model is a {model.qualname}, not a detection model")
    stubs = {type(m).__name__ for _, m in iter_modules(model) if hasattr(m, "qualname")}
    if family == "yolov5" and stubs & {"C3k2", "C2PSA"}:
        raise CheckpointError(f"{p}: a YOLOv5 model with YOLO11 blocks")
    arch = getattr(model, "yaml", None)
    if not isinstance(arch, Mapping) or "backbone" not in arch or "head" not in arch:
        raise CheckpointError(f"{p}: the model has no architecture dict ('yaml' with backbone and head)")
    if family == "yolo11" and not any(str(r[2]) == "C3k2" for r in list(arch["backbone"]) + list(arch["head"])):
        raise CheckpointError(
            f"{p}: an ultralytics model that is not YOLO11 (no C3k2 layers): sleuth converts YOLOv5 and YOLO11 "
            "MegaDetector releases only"
        )
    stride = getattr(model, "stride", None)
    if stride is None:
        raise CheckpointError(f"{p}: the model records no strides")
    strides = [float(s) for s in stride.tolist()]
    weights = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict(model).items()}
    if family == "yolov5":  # YOLOv5 before v6.0 kept the derived anchor grid as a buffer: recomputed from anchors
        weights = {k: v for k, v in weights.items() if not k.endswith((".anchor_grid", ".grid"))}
    head = len(list(arch["backbone"])) + len(list(arch["head"])) - 1
    return Release(
        path=p,
        family=family,
        arch=dict(arch),
        strides=strides,
        names=_names(getattr(model, "names", None), int(arch["nc"])),
        weights=weights,
        stub=model,
        dw_head=f"model.{head}.cv3.0.0.0.conv.weight" in weights,
    )


def build_network(rel: Release) -> Any:
    """Our own network for ``rel``, weights loaded with ``strict=True`` (eval mode, FP32)."""
    from torch import nn

    from sleuth.convert.yolo_models import Yolo11, YoloV5

    try:
        net = YoloV5(rel.arch, rel.strides) if rel.family == "yolov5" else Yolo11(rel.arch, rel.strides, rel.dw_head)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise CheckpointError(f"{rel.path}: cannot build a {rel.family} network from its architecture: {e}") from e
    try:
        net.load_state_dict(rel.weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{rel.path}: the weights do not fit sleuth's {rel.family} network: {e}") from e
    stubs = dict(iter_modules(rel.stub))
    for name, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d) and name in stubs:
            m.eps = float(getattr(stubs[name], "eps", m.eps))
    return net.float().eval()


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter: ``weights`` (a release ``.pt``) -> ``{"onnx": model.onnx}``."""
    import torch

    from sleuth.convert.onnx_export import trace_to_onnx
    from sleuth.convert.yolo_models import export_module

    rel = read_release(artefacts["weights"])
    net = build_network(rel)
    size = int(max(rel.strides)) * 10  # any multiple of the largest stride: the graph is shape-generic
    out = out_dir / "model.onnx"
    trace_to_onnx(
        export_module(net),
        torch.zeros(1, 3, size, size),
        out,
        input_names=["images"],
        output_names=["output"],
        dynamic_axes={
            "images": {0: "batch", 2: "height", 3: "width"},
            "output": {0: "batch", 1 if rel.family == "yolov5" else 2: "anchors"},
        },
        opset=OPSET,
        metadata={
            "sleuth.output": "yolov5" if rel.family == "yolov5" else "yolov8",
            "sleuth.architecture": rel.family,
            "sleuth.stride": str(int(max(rel.strides))),
            "sleuth.names": json.dumps(rel.names),
            "sleuth.source": rel.path.name,
        },
    )
    return {"onnx": out}
