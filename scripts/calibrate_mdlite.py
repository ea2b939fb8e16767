#!/usr/bin/env python3
"""Generate ``src/sleuth/data/calibration/mdlite-int8.json``: MD-Lite's INT8 calibration table.

Runs the FP32 MD-Lite export (``sleuth.convert.yolox_tiny``, dynamic size, raw head) over the
*calibration half* of the shared camera-trap set and records the min/max of every tensor the
INT8 quantizer needs (``sleuth.convert.quantize.calibrate_ranges``). The calibration half is the
decodable, non-video images of ``../shared/data/camera_traps/manifest.json`` at even positions
(in manifest order); the odd positions are held out, and ``tests/detectors/test_mdlite_int8.py``
measures the INT8 model against FP32 on them. Each image is prepared by ``MegadetectorLite().preprocess``
(DCT-reduced decode at >= 640 px, rectangular letterbox, area resize).

After regenerating, put the new file's sha256 into ``CALIBRATION_SHA256`` in
``sleuth/convert/yolox_tiny.py`` (this prints it).

Usage: ``SLEUTH_MODEL_MIRROR=../shared/data/models python scripts/calibrate_mdlite.py
[--data ../shared/data] [--out src/sleuth/data/calibration/mdlite-int8.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def calibration_split(data: Path) -> tuple[list[str], list[str]]:
    """(calibration, held-out) image paths relative to ``data / "camera_traps"``."""
    man = json.loads((data / "camera_traps" / "manifest.json").read_text())
    usable = [r["path"] for r in man["images"] if r["kind"] != "invalid" and not r["path"].endswith(".mp4")]
    return usable[0::2], usable[1::2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "sleuth" / "data" / "calibration" / "mdlite-int8.json")
    args = ap.parse_args()

    from sleuth.convert.quantize import calibrate_ranges
    from sleuth.convert.yolox_tiny import WEIGHTS_SHA256, export_onnx, int8_excluded_nodes, load_checkpoint
    from sleuth.engine.catalog import ensure
    from sleuth.models.mdlite import MegadetectorLite

    weights = ensure("mdlite", convert=False)["weights"]
    calib, _held_out = calibration_split(args.data)
    prep = MegadetectorLite()  # the serving preprocessing (draft decode, rect letterbox)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(load_checkpoint(weights, decode_in_graph=False), Path(tmp) / "model.onnx")
        feeds = ({"images": prep.preprocess((args.data / "camera_traps" / p).read_bytes()).tensor[None]} for p in calib)
        ranges = calibrate_ranges(fp32, feeds, int8_excluded_nodes(fp32))
    table = {
        "format": 1,
        "method": "minmax",
        "model": "mdlite",
        "source_sha256": WEIGHTS_SHA256,
        "preprocess": "MegadetectorLite(): decode_max_side=640, rect=True, fast_resize=True",
        "onnxruntime": importlib.metadata.version("onnxruntime"),
        "torch": importlib.metadata.version("torch"),
        "images": [f"camera_traps/{p}" for p in calib],
        "ranges": {k: [round(lo, 6), round(hi, 6)] for k, (lo, hi) in ranges.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {len(ranges)} tensors from {len(calib)} images; sha256 {digest}")


if __name__ == "__main__":
    main()
