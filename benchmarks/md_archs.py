"""``benchmarks/detector.py --megadetector``: each converted MegaDetector architecture vs upstream, CPU.

For each golden release-format checkpoint (``tests/detectors/golden_md/``: random weights, the
release's file structure, a smaller width/depth; see docs/models.md) at its release's native input
size (scene.png letterboxed: 1280 px for YOLOv5x6, 640 for YOLOv5s and YOLO11L, 960 for YOLO11s):

* **ours, model-only**: ONNX Runtime on sleuth's conversion (``sleuth.convert.megadetector``), batch N;
* **ours, end to end**: ``MegaDetectorOnnx`` (PNG decode, letterbox, ORT, NMS, box mapping), batch N;
* **upstream**: the same checkpoint in upstream's own code (yolov5 / ultralytics, PyTorch FP32, fused),
  same tensor and batch, run by ``benchmarks/md_upstream.py`` in a throwaway venv (``--upstream-python``)
  because sleuth never installs or imports upstream packages.

Both sides get the same number of intra-op threads. The widths are reduced, so absolute speeds are
not those of the real releases; the ratio compares the two runtimes on the same network.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "detectors" / "golden_md"
SIZES = {"yolov5x6": 1280, "yolov5s": 640, "yolo11l": 640, "yolo11s": 960}
RELEASES = {
    "yolov5x6": "MDv5a/b, redwood",
    "yolov5s": "spruce",
    "yolo11l": "larch",
    "yolo11s": "sorrel",
}


def _best(fn: Any, repeats: int) -> float:
    return max(fn() for _ in range(repeats))


def run(upstream_python: str, batch: int, repeats: int, threads: int) -> int:
    import onnxruntime as ort

    from sleuth.convert.megadetector import convert
    from sleuth.models.megadetector import MegaDetectorOnnx

    scene = (GOLDEN / "scene.png").read_bytes()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mdbench-") as tmp:
        for arch, size in SIZES.items():
            out = Path(tmp) / arch
            out.mkdir()
            onnx_path = convert({"weights": GOLDEN / f"{arch}.pt"}, out)["onnx"]
            model = MegaDetectorOnnx(image_size=size)
            model.load({"onnx": onnx_path})
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            model.session = sess
            prepared = model.preprocess(scene)
            x = np.repeat(prepared.tensor[None], batch, 0)
            sess.run(None, {"images": x})  # warm-up

            def model_only(x: np.ndarray = x, sess: Any = sess) -> float:
                t = time.perf_counter()
                sess.run(None, {"images": x})
                return x.shape[0] / (time.perf_counter() - t)

            def end_to_end(model: MegaDetectorOnnx = model) -> float:
                t = time.perf_counter()
                preps = [model.preprocess(scene) for _ in range(batch)]
                raws = model.predict_batch(preps)
                for r, p in zip(raws, preps, strict=True):
                    model.postprocess(r, p)
                return batch / (time.perf_counter() - t)

            ours = _best(model_only, repeats)
            e2e = _best(end_to_end, repeats)
            npy = Path(tmp) / f"{arch}.npy"
            np.save(npy, prepared.tensor[None])
            family = "yolov5" if arch.startswith("yolov5") else "yolo11"
            up: float | None = None
            note = ""
            try:
                proc = subprocess.run(
                    [
                        upstream_python,
                        str(ROOT / "benchmarks" / "md_upstream.py"),
                        str(GOLDEN / f"{arch}.pt"),
                        family,
                        str(npy),
                        str(batch),
                        str(repeats),
                        str(threads),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode == 0 and line:
                    rec = json.loads(line[-1])
                    up, note = float(rec["images_per_s"]), f"torch {rec['torch']}"
                else:
                    note = "upstream failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:80]
            except (OSError, subprocess.TimeoutExpired) as e:
                note = f"upstream not run: {e}"
            rows.append((arch, RELEASES[arch], "x".join(map(str, prepared.tensor.shape[1:])), ours, e2e, up, note))
    print(f"MegaDetector architectures, CPU, batch {batch}, {threads} intra-op threads, best of {repeats}")
    head = f"{'arch':<9}{'releases':<18}{'input':<10}{'ours ORT':>10}{'ours e2e':>10}{'upstream':>10}{'ratio':>8}"
    print(head + "  (img/s; ratio = ours ORT / upstream)")
    for arch, rel, hw, ours, e2e, up, note in rows:
        ratio = f"{ours / up:8.2f}" if up else f"{'-':>8}"
        upt = f"{up:10.2f}" if up else f"{'-':>10}"
        print(f"{arch:<9}{rel:<18}{hw:<10}{ours:10.2f}{e2e:10.2f}{upt}{ratio}  {note}")
    return 0
