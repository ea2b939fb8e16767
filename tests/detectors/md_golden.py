"""Shared helpers for the MegaDetector conversion tests: the golden files and catalog entries over them.

``golden_md/`` holds, per architecture, a release-format checkpoint with random (nudged) weights
and upstream's outputs on it, made by ``scripts/golden/make_megadetector_golden.py`` (docs/models.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "golden_md"

#: golden architecture -> (the releases it stands for, native input size)
ARCHS: dict[str, tuple[tuple[str, ...], int]] = {
    "yolov5x6": (("mdv5a.0.0", "mdv5b.0.0", "mdv5a.0.1", "mdv5b.0.1", "mdv1000-redwood"), 1280),
    "yolov5s": (("mdv1000-spruce",), 640),
    "yolo11l": (("mdv1000-larch",), 640),
    "yolo11s": (("mdv1000-sorrel",), 960),
}


def golden_json(arch: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{arch}.json").read_text())  # type: ignore[no-any-return]


def golden_npz(arch: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{arch}.npz") as z:
        return {k: z[k] for k in z.files}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def entry_name(arch: str) -> str:
    return f"mdgold-{arch}"


def write_catalog(folder: Path, archs: list[str] | None = None, md5s: dict[str, str] | None = None) -> Path:
    """A catalog file with one MegaDetector-style entry per golden checkpoint (from the mirror's ``golden_md/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in archs or list(ARCHS):
        releases, size = ARCHS[arch]
        digest = (md5s or {}).get(arch) or md5(GOLDEN / f"{arch}.pt")
        score_map = (
            '[model.score_map]\nx = [0, 0.35, 1]\ny = [0, 0.2, 1]\nfitted_on = "as the MDv1000 entries"\n'
            if any(r.startswith("mdv1000") for r in releases) and arch != "yolov5x6"
            else ""
        )
        rows.append(
            f"""[[model]]
name = "{entry_name(arch)}"
version = "golden"
task = "animal-detection"
licence = "MIT"
description = "random-weight {arch} in the file format of {releases[0]}"
loader = "sleuth.models.megadetector:MegaDetectorOnnx"
convert = "sleuth.convert.megadetector:convert"
conf_threshold = 0.005
image_size = {size}
{score_map}[[model.artefact]]
name = "weights"
filename = "{arch}.pt"
md5 = "{digest}"
max_size = 20_000_000
mirror = "golden_md/{arch}.pt"
"""
        )
    (folder / "mdgold.toml").write_text("\n".join(rows))
    return folder


def mirror_with_golden(folder: Path, shared_models: Path | None) -> Path:
    """A mirror folder: the shared model mirror's entries (linked) plus ``golden_md/``."""
    folder.mkdir(parents=True, exist_ok=True)
    if shared_models is not None and shared_models.is_dir():
        for p in shared_models.iterdir():
            link = folder / p.name
            if not link.exists():
                link.symlink_to(p)
    link = folder / "golden_md"
    if not link.exists():
        link.symlink_to(GOLDEN)
    return folder


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    ours: list[tuple[list[float], float, int]], gold: dict[str, Any], cut: float = 0.15, margin: float = 0.01
) -> None:
    """Every golden box scoring >= cut has one of ours (IoU >= 0.99, score within 1e-3, same class), and
    every one of ours scoring >= cut + margin has a golden one (the margin keeps boxes at the cut out)."""
    golden = list(zip(gold["boxes_xyxy"], gold["scores"], gold["classes"], strict=True))
    assert any(s >= 0.5 for _, s, _ in golden), "the nudged checkpoint should give confident boxes"
    for box, score, cls in golden:
        if score < cut:
            continue
        best = max(ours, key=lambda o: iou(o[0], box), default=None)
        assert best is not None, f"no box of ours for golden {box} ({score})"
        assert iou(best[0], box) >= 0.99, (box, best)
        assert abs(best[1] - score) < 1e-3, (box, score, best)
        assert best[2] == cls
    for box, score, _ in ours:
        if score >= cut + margin:
            assert max(iou(g[0], box) for g in golden) >= 0.99, (box, score)
