"""Upstream side of ``benchmarks/detector.py --megadetector``: run in the THROWAWAY venv, never in sleuth's.

Loads a golden release-format checkpoint with upstream's own loader (yolov5: ``torch.load`` +
``fuse``, as MegaDetector does; ultralytics: ``load_checkpoint(fuse=True)``), runs it in FP32 on
the CPU on the letterboxed tensor saved by the caller, and prints one JSON line:
``{"images_per_s": ..., "torch": ...}``. Usage (the caller does this)::

    .venvs/mdgold/bin/python benchmarks/md_upstream.py CKPT FAMILY TENSOR.npy BATCH REPEATS THREADS
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def main() -> None:
    ckpt, family, tensor, batch, repeats, threads = sys.argv[1:7]
    import numpy as np
    import torch

    torch.set_num_threads(int(threads))
    if family == "yolov5":
        import yolov5.models.common as common
        import yolov5.models.yolo as yolo

        sys.modules["models"] = sys.modules["yolov5.models"]
        sys.modules["models.yolo"], sys.modules["models.common"] = yolo, common
        net = torch.load(ckpt, map_location="cpu", weights_only=False)["model"].float().fuse().eval()
    else:
        from ultralytics.nn.tasks import load_checkpoint

        net, _ = load_checkpoint(ckpt, fuse=True)
        net = net.float().eval()
    x = torch.from_numpy(np.load(tensor)).repeat(int(batch), 1, 1, 1)
    best = 0.0
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(int(repeats)):
            t = time.perf_counter()
            net(x)
            best = max(best, x.shape[0] / (time.perf_counter() - t))
    print(json.dumps({"images_per_s": best, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
