"""Make the MegaDetector golden files: release-format checkpoints with random weights, and upstream's outputs on them.

Runs by hand, offline, in a THROWAWAY venv that has the upstream packages (CI never runs it;
sleuth never imports them)::

    python3 -m venv .venvs/mdgold
    .venvs/mdgold/bin/pip install torch==2.14.1 torchvision==0.29.1
    .venvs/mdgold/bin/pip install yolov5==7.0.14 ultralytics==8.4.190 'setuptools<81'
    .venvs/mdgold/bin/python scripts/golden/make_megadetector_golden.py tests/detectors/golden_md

Per architecture (``ARCHS``) it

1. builds upstream's own model from upstream's config (``yolov5x6.yaml`` / ``yolov5s.yaml`` of
   the yolov5 package, ``yolo11.yaml`` of ultralytics) with 3 classes and a smaller
   depth/width, random weights and random BatchNorm statistics;
2. nudges one head level so that a few cells of ``scene.png`` give confident animal boxes (all
   other levels and anchors are pushed to ~0) - the NMS golden needs real detections;
3. writes the checkpoint the way upstream's trainer does (the training checkpoint dict, then
   upstream's own ``strip_optimizer``: EMA model, FP16, no optimizer), so the file pickles the
   release's classes (``models.yolo.Model`` / ``models.yolo.DetectionModel`` and
   ``models.common.*`` for YOLOv5, ``ultralytics.nn.tasks.DetectionModel`` and
   ``ultralytics.nn.modules.*`` for YOLO11);
4. reloads that file with upstream's loader (fused, FP32, eval, as MegaDetector runs it) and
   records (a) the raw head outputs (per level, before sigmoid/decode) and the decoded output
   for a small letterboxed input, (b) upstream's letterbox + NMS (conf 0.1, IoU 0.45) + box
   rescaling on ``scene.png`` at the release's native input size.

Outputs: ``<arch>.pt``, ``<arch>.npz`` (raw input uint8 HWC, raw per level, decoded),
``<arch>.json`` (NMS boxes in scene pixels, scores, classes, versions), ``scene.png``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image

# yolov5 7.0's strip_optimizer predates torch's weights_only default: let upstream's own loads work.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

SEED = 1234
RAW_SIZE = 128  # letterbox target of the raw-head input (small golden files)
NMS_CONF, NMS_IOU = 0.1, 0.45
SCENE_WH = (600, 400)

ARCHS: dict[str, dict[str, Any]] = {
    # MDv5a/b and MDv1000 redwood: YOLOv5x6 (P6, 1280 px). MDv5 (2022) pickles the pre-v6.2 name `Model`.
    "yolov5x6": {
        "family": "yolov5",
        "cfg": "models/hub/yolov5x6.yaml",
        "dm": 0.33,
        "wm": 0.0625,
        "size": 1280,
        "cls": "Model",
    },
    # MDv1000 spruce: YOLOv5s (P5, 640 px)
    "yolov5s": {
        "family": "yolov5",
        "cfg": "models/yolov5s.yaml",
        "dm": 0.33,
        "wm": 0.0625,
        "size": 640,
        "cls": "DetectionModel",
    },
    # MDv1000 larch: YOLO11L (c3k blocks), 640 px
    "yolo11l": {"family": "yolo11", "scale": "l", "scales": [0.5, 0.125, 512], "size": 640},
    # MDv1000 sorrel: YOLO11s, 960 px
    "yolo11s": {"family": "yolo11", "scale": "s", "scales": [0.5, 0.125, 1024], "size": 960},
}


def make_scene(path: Path) -> np.ndarray:
    """A smooth synthetic 600x400 RGB picture (gradients + blobs): deterministic, compresses well."""
    w, h = SCENE_WH
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 160 + 40, yy / h * 120 + 60, (xx + yy) / (w + h) * 90 + 80], -1)
    rng = np.random.default_rng(SEED)
    for _ in range(90):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 45)
        col = rng.uniform(0, 255, 3)
        m = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[m] = col
    img += (np.sin(xx / 3.0) * np.cos(yy / 5.0))[..., None] * 25  # fine texture: features vary cell to cell
    arr = np.clip(img, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, optimize=True)
    return arr


def randomize(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Random BatchNorm affine terms, running statistics measured on ``x`` (keeps features from collapsing)."""
    g = torch.Generator().manual_seed(SEED)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            n = m.num_features
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
            m.momentum = 1.0  # running stats := this batch's
        model.train()
        model(x)
        model.eval()
        for m in bns:
            m.momentum = 0.03
            m.num_batches_tracked.zero_()


# ------------------------------------------------------------------------------------------ YOLOv5


def v5_import() -> SimpleNamespace:
    import yolov5.models.common as common
    import yolov5.models.yolo as yolo

    # The releases were trained from a checkout of the yolov5 repo: classes live in `models.*`.
    sys.modules["models"] = sys.modules["yolov5.models"]
    sys.modules["models.yolo"], sys.modules["models.common"] = yolo, common
    for cls in (yolo.DetectionModel, yolo.Detect):
        cls.__module__ = "models.yolo"
    for cls in (common.Conv, common.C3, common.Bottleneck, common.SPPF, common.Concat):
        cls.__module__ = "models.common"
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes, strip_optimizer

    return SimpleNamespace(
        yolo=yolo, letterbox=letterbox, nms=non_max_suppression, scale=scale_boxes, strip=strip_optimizer
    )


def v5_build(spec: dict[str, Any]) -> tuple[Any, SimpleNamespace]:
    import yaml

    up = v5_import()
    root = Path(up.yolo.__file__).parent.parent
    cfg = yaml.safe_load((root / spec["cfg"]).read_text())
    cfg.update(nc=3, depth_multiple=spec["dm"], width_multiple=spec["wm"])
    torch.manual_seed(SEED)
    model = up.yolo.DetectionModel(cfg)
    model.names = ["animal", "person", "vehicle"]
    model.nc = 3
    model.hyp = {"box": 0.05, "cls": 0.5, "obj": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}
    # The name the class is pickled under (pickle checks models.yolo.<name> is the same class).
    up.yolo.DetectionModel.__qualname__ = up.yolo.DetectionModel.__name__ = spec["cls"]
    return model, up


def v5_save(model: Any, up: SimpleNamespace, path: Path) -> None:
    from copy import deepcopy

    opt = {"weights": "yolov5x6.pt", "cfg": "", "img_size": [1280, 1280], "epochs": 1, "save_dir": "runs/train/exp"}
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    ckpt = {
        "epoch": 0,
        "best_fitness": np.array([0.5]),
        "model": deepcopy(model).half(),
        "ema": deepcopy(model).half(),
        "updates": 1,
        "optimizer": optim.state_dict(),
        "opt": opt,
        "date": "2022-06-15T00:00:00",
    }
    torch.save(ckpt, path)
    up.strip(str(path))  # upstream's own finalisation: EMA model, FP16, no optimizer


def v5_head(model: Any) -> tuple[Any, list[Any]]:
    det = model.model[-1]
    return det, list(det.m)


# ------------------------------------------------------------------------------------------ YOLO11


def u_build(spec: dict[str, Any]) -> tuple[Any, SimpleNamespace]:
    import ultralytics
    from ultralytics.cfg import get_cfg
    from ultralytics.data.augment import LetterBox
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint, yaml_model_load
    from ultralytics.utils import nms as unms
    from ultralytics.utils import ops
    from ultralytics.utils.torch_utils import strip_optimizer

    cfg = yaml_model_load(Path(ultralytics.__file__).parent / "cfg/models/11/yolo11.yaml")
    cfg["yaml_file"] = "yolo11.yaml"  # the config's name, not the path of this machine's venv
    cfg["scales"] = {spec["scale"]: spec["scales"]}
    cfg["scale"] = spec["scale"]
    cfg["nc"] = 3
    torch.manual_seed(SEED)
    model = DetectionModel(cfg, nc=3, verbose=False)
    model.names = {0: "animal", 1: "person", 2: "vehicle"}
    model.args = get_cfg()  # IterableSimpleNamespace; strip_optimizer turns it into a dict
    up = SimpleNamespace(
        LetterBox=LetterBox,
        load=load_checkpoint,
        nms=unms.non_max_suppression,
        scale=ops.scale_boxes,
        strip=strip_optimizer,
        version=ultralytics.__version__,
    )
    return model, up


def u_save(model: Any, up: SimpleNamespace, path: Path) -> None:
    from copy import deepcopy

    ckpt = {
        "epoch": 0,
        "best_fitness": 0.5,
        "model": None,
        "ema": deepcopy(model).half(),
        "updates": 1,
        "optimizer": None,
        "train_args": {"model": "yolo11.yaml", "imgsz": 640, "epochs": 1},
        "train_metrics": {"metrics/mAP50(B)": 0.5},
        "date": "2025-03-01T00:00:00",
    }
    torch.save(ckpt, path)
    up.strip(str(path))


# ------------------------------------------------------------------------------------------ common


def confident_channel(feat: torch.Tensor) -> tuple[torch.Tensor, float, str]:
    """1x1-conv weights and bias whose logit map over ``feat`` (C, H, W) is > 0 on a few distinct cells only.

    The direction of the most distinctive cell (centred features), thresholded in the widest gap
    among its top 3..10 cells, scaled so that the best cell reaches logit 5.
    """
    c = feat.shape[0]
    v = feat.reshape(c, -1)
    mu = v.mean(1, keepdim=True)
    d = v - mu
    u = d[:, d.norm(dim=0).argmax()]
    u = u / u.norm()
    logit = u @ d
    top = logit.sort(descending=True).values
    gaps = top[2:10] - top[3:11]
    k = int(gaps.argmax()) + 3
    t = float(top[k - 1] + top[k]) / 2
    a = 5.0 / max(float(top[0]) - t, 1e-6)
    return (
        a * u,
        float(-a * (u @ mu[:, 0]) - a * t),
        f"{k} cells over the cut, gap {float(gaps.max()):.4f}, scale {a:.2f}",
    )


def nudge(name: str, spec: dict[str, Any], model: Any, x: torch.Tensor) -> None:
    """Make level 1 give a handful of confident class-0 boxes on ``x``; silence every other output."""
    det = model.model[-1]
    feats: list[Any] = []
    h = det.register_forward_pre_hook(lambda m, inp: feats.append([t.detach() for t in inp[0]]))
    model.eval()
    with torch.no_grad():
        model(x)
    h.remove()
    f1 = feats[0][1]
    with torch.no_grad():
        if spec["family"] == "yolov5":
            no, na = det.no, det.na
            for lvl, conv in enumerate(det.m):
                b = conv.bias.view(na, no)
                b[:, 4] = -12.0  # objectness off
                b[:, 5:] = torch.tensor([4.0, 0.0, -4.0])
                if lvl == 1:
                    w, bias, note = confident_channel(f1[0])
                    conv.weight[4, :, 0, 0] = w
                    conv.bias[4] = bias
                    conv.weight[2:4] *= 0.05  # w, h near the anchor's size (random ones collapse to ~0 px)
                    conv.bias[2:4] = 0.0
        else:
            for lvl, seq in enumerate(det.cv3):
                conv = seq[-1]
                conv.bias[:] = -12.0
                if lvl == 1:
                    w, bias, note = confident_channel(seq[:-1](f1)[0])
                    conv.weight[0, :, 0, 0] = w
                    conv.bias[0] = bias
    print(f"{name}: nudged level 1: {note}; feature std across cells {float(f1[0].std(dim=(1, 2)).mean()):.4f}")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None] / 255.0


def letterbox_any(spec: dict[str, Any], up: SimpleNamespace, rgb: np.ndarray, size: int, stride: int) -> np.ndarray:
    if spec["family"] == "yolov5":
        return up.letterbox(rgb, size, stride=stride, auto=True)[0]  # type: ignore[no-any-return]
    lb = up.LetterBox((size, size), auto=True, stride=stride)
    return lb(image=rgb)  # type: ignore[no-any-return]


def make(name: str, spec: dict[str, Any], out: Path, scene: np.ndarray) -> None:
    model, up = v5_build(spec) if spec["family"] == "yolov5" else u_build(spec)
    stride = int(max(model.stride.tolist()))
    size = spec["size"]
    scene_in = letterbox_any(spec, up, scene, size, stride)
    randomize(model, to_tensor(scene_in))
    nudge(name, spec, model, to_tensor(scene_in))
    ckpt_path = out / f"{name}.pt"
    (v5_save if spec["family"] == "yolov5" else u_save)(model, up, ckpt_path)

    # Reload the file as upstream (and MegaDetector) run it: fused, FP32, eval.
    if spec["family"] == "yolov5":
        net = torch.load(ckpt_path, map_location="cpu", weights_only=False)["model"].float().fuse().eval()
        version = "yolov5==7.0.14"
    else:
        net, _ = up.load(str(ckpt_path), fuse=True)
        net = net.float().eval()
        version = f"ultralytics=={up.version}"
    det = net.model[-1]

    raw_in = letterbox_any(spec, up, scene, RAW_SIZE, stride)
    with torch.no_grad():
        y = net(to_tensor(raw_in))
    if spec["family"] == "yolov5":
        decoded, raw = y[0][0], [r[0] for r in y[1]]
    else:
        decoded = y[0][0]
        feats = y[1]["feats"]
        raw = [torch.cat((det.cv2[i](f), det.cv3[i](f)), 1)[0] for i, f in enumerate(feats)]
    arrays = {"raw_input": raw_in, "decoded": decoded.numpy()}
    arrays.update({f"raw_{i}": r.numpy() for i, r in enumerate(raw)})
    np.savez_compressed(out / f"{name}.npz", **arrays)

    with torch.no_grad():
        pred = net(to_tensor(scene_in))[0]
        dets = up.nms(pred, NMS_CONF, NMS_IOU)[0]
    dets[:, :4] = up.scale(scene_in.shape[:2], dets[:, :4], scene.shape[:2])
    record = {
        "arch": name,
        "family": spec["family"],
        "upstream": version,
        "torch": torch.__version__,
        "image_size": size,
        "stride": stride,
        "letterboxed_hw": list(scene_in.shape[:2]),
        "raw_input_hw": list(raw_in.shape[:2]),
        "nms_conf": NMS_CONF,
        "nms_iou": NMS_IOU,
        "boxes_xyxy": [[round(float(v), 4) for v in d[:4]] for d in dets],
        "scores": [round(float(d[4]), 6) for d in dets],
        "classes": [int(d[5]) for d in dets],
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name}: {ckpt_path.stat().st_size} bytes, {len(dets)} boxes, scores {record['scores'][:8]}")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/detectors/golden_md")
    only = sys.argv[2:] or list(ARCHS)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene(out / "scene.png")
    for name in only:
        make(name, ARCHS[name], out, scene)


if __name__ == "__main__":
    main()
