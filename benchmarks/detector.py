"""Detector throughput on the shared camera-trap images: our path vs model-only vs naive.

Runs, in one process, on the decodable images of ``../shared/data/camera_traps`` (repeated to
``--images``):

* **ours**: ``MicroBatcher`` (sleuth.engine.batcher) over ``MegadetectorLite`` with the serving
  default (JPEG DCT-domain draft decode at >= 640 px), preprocessing overlapped with batched
  inference (a thread-pool overlap is used if the batcher is missing);
* **model-only**: ORT on pre-decoded, pre-padded tensors, same batch size (the upper limit);
* **naive**: full PIL decode + ``ImageOps.pad`` + batch 1, all in the calling thread (FP32 graph);
* **model-only by graph**: the same limit for MD-Lite's FP32 graph on zamba's 640x640 input, FP32 on
  the rectangular letterbox, and INT8 on the rectangular letterbox (the serving default).

Prints images/s and the ratios. ``--megadetector`` instead reports each converted MegaDetector
architecture at its native input size against upstream's code on the same random-weight checkpoint
(``benchmarks/md_archs.py``; upstream runs in a throwaway venv given by ``--upstream-python``). Usage::

    python benchmarks/detector.py [--images 96] [--batch 8] [--repeats 2]
    python benchmarks/detector.py --megadetector [--upstream-python .venvs/mdgold/bin/python]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _images(n: int) -> list[bytes]:
    man = json.loads((DATA / "camera_traps" / "manifest.json").read_text())
    files = [(DATA / "camera_traps" / r["path"]).read_bytes() for r in man["images"] if r["kind"] != "invalid"]
    return [files[i % len(files)] for i in range(n)]


def _artefacts() -> dict[str, Path]:
    from sleuth.engine.catalog import ensure
    from sleuth.settings import Settings

    s = Settings()
    if s.model_mirror is None:
        s = Settings(model_mirror=DATA / "models")
    return ensure("mdlite", s)


def bench_ours(model: Any, items: list[bytes], batch: int) -> float:
    try:
        from sleuth.engine.batcher import MicroBatcher
    except ImportError:  # pragma: no cover - before the engine's batcher existed
        MicroBatcher = None  # noqa: N806
    t = time.perf_counter()
    if MicroBatcher is not None:
        with MicroBatcher(model, max_batch_size=batch, max_wait_ms=5.0, max_queue=4 * len(items)) as mb:
            res = mb.run(items, lane="job")
    else:
        with ThreadPoolExecutor(2) as pool:
            prepared = list(pool.map(model.preprocess, items))
            res = []
            for i in range(0, len(prepared), batch):
                chunk = prepared[i : i + batch]
                res += [model.postprocess(r, p) for r, p in zip(model.predict_batch(chunk), chunk, strict=True)]
    dt = time.perf_counter() - t
    assert len(res) == len(items)
    return len(items) / dt


def bench_model_only(model: Any, items: list[bytes], batch: int) -> float:
    prepared = [model.preprocess(b) for b in items]
    t = time.perf_counter()
    for i in range(0, len(prepared), batch):
        model.predict_batch(prepared[i : i + batch])
    return len(items) / (time.perf_counter() - t)


def bench_naive(session: Any, items: list[bytes]) -> float:
    from PIL import Image, ImageOps

    from sleuth.media.images import decode_image

    t = time.perf_counter()
    for b in items:
        img = decode_image(b).to_pil()  # full decode (exif_transpose + convert('RGB'))
        pad = ImageOps.pad(img, (640, 640), Image.Resampling.BICUBIC, color=None, centering=(0, 0))
        x = np.asarray(pad, dtype=np.float32).transpose(2, 0, 1)[None]
        session.run(None, {"images": np.ascontiguousarray(x)})
    return len(items) / (time.perf_counter() - t)


def bench_decode(items: list[bytes]) -> tuple[float, float]:
    from sleuth.media.images import decode_image

    t = time.perf_counter()
    for b in items:
        decode_image(b)
    full = len(items) / (time.perf_counter() - t)
    t = time.perf_counter()
    for b in items:
        decode_image(b, 640)
    return full, len(items) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    ap.add_argument("--providers", default="", help="ORT providers, comma separated (default: auto)")
    ap.add_argument("--megadetector", action="store_true", help="the converted MegaDetector architectures")
    ap.add_argument("--upstream-python", default=".venvs/mdgold/bin/python", help="venv with yolov5/ultralytics")
    ap.add_argument("--threads", type=int, default=2, help="--megadetector: intra-op threads on both sides")
    a = ap.parse_args(argv)
    if a.megadetector:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from md_archs import run

        return run(a.upstream_python, a.batch, a.repeats, a.threads)
    if not DATA.is_dir():
        print("shared/data not present", file=sys.stderr)
        return 2
    from sleuth.engine.runtime import create_session
    from sleuth.models.mdlite import MegadetectorLite

    arts = _artefacts()
    providers = a.providers or None
    model = MegadetectorLite()
    model.load(arts, providers)
    naive_sess = create_session(arts["onnx"], providers)
    items = _images(a.images)
    model([items[0]] * 2)  # warm-up
    naive_sess.run(None, {"images": np.zeros((1, 3, 640, 640), np.float32)})

    def best(fn: Any, *args: Any) -> float:
        return max(fn(*args) for _ in range(a.repeats))

    ours = best(bench_ours, model, items, a.batch)
    limit = best(bench_model_only, model, items, a.batch)
    naive = best(bench_naive, naive_sess, items[: max(8, a.images // 4)])
    dec_full, dec_draft = bench_decode(items[: max(8, a.images // 4)])
    print(f"providers: {model.session.get_providers()}  images: {a.images}  batch: {a.batch}")
    print(f"decode only (1 thread): full {dec_full:7.1f} img/s   draft>=640 {dec_draft:7.1f} img/s")
    graphs = []
    for label, kw in (
        ("FP32, 640x640 (zamba's input)", {"precision": "fp32", "rect": False}),
        ("FP32, rectangular", {"precision": "fp32"}),
        ("INT8, rectangular (default)", {"precision": "int8"}),
    ):
        m = MegadetectorLite(**kw)
        m.load(arts, providers)
        m.predict_batch([m.preprocess(items[0])])  # warm-up
        graphs.append((label, best(bench_model_only, m, items, a.batch)))
    print(f"{'path':<34}{'img/s':>9}{'vs model-only':>15}{'vs naive':>10}")
    for name, v in (
        ("model-only (pre-decoded tensors)", limit),
        ("ours (draft + overlap + batch)", ours),
        ("naive (full decode, batch 1)", naive),
    ):
        print(f"{name:<34}{v:9.1f}{v / limit:15.2f}{v / naive:10.2f}")
    print("model-only by MD-Lite graph:")
    for label, v in graphs:
        print(f"  {label:<32}{v:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
