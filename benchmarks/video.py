"""Video/image deepfake throughput: sleuth's pipeline vs a straightforward baseline, same process.

Video: a 1080p H.264 clip (a shared FF++ clip upscaled to 1920x1080; synthetic when shared/data is
absent), sampled at 2 fps.
  * sleuth: ``analyze_video`` - skip conversion of unsampled frames, downscale while converting
    (swscale, max side 1280), detect faces on a 640-px copy, MesoNet batched over all crops.
  * baseline: decode AND convert every frame to full-size RGB, take the same 2 fps frames,
    detect faces at full resolution, MesoNet batch 1 per face.
Image: ``analyze_image`` on a 1080p JPEG frame vs full-resolution detection + batch-1 MesoNet.

Run: ``python benchmarks/video.py [--seconds 8] [--repeat 2]`` (models come from the catalog).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def make_1080p(dst: Path, seconds: float) -> Path:
    import av

    src = DATA / "video/ffpp/original/004.mp4"
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "20", "g": "50"}
        n = int(seconds * 25)
        if src.is_file():
            with av.open(str(src)) as inp:
                for i, fr in enumerate(inp.decode(video=0)):
                    if i >= n:
                        break
                    up = fr.reformat(width=1920, height=1080, format="yuv420p")
                    up.pts = i
                    up.time_base = Fraction(1, 25)
                    for pkt in vs.encode(up):
                        out.mux(pkt)
        else:
            for i in range(n):
                img = np.full((1080, 1920, 3), (i * 3) % 255, np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts, vf.time_base = i, Fraction(1, 25)
                for pkt in vs.encode(vf):
                    out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return dst


def baseline_video(path: Path, det, model, fps: float = 2.0) -> int:
    import av

    from sleuth.pipelines.faces import crop_face

    faces_done = 0
    next_t = 0.0
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for fr in c.decode(st):
            rgb = fr.to_ndarray(format="rgb24")  # every frame, full size
            t = float(fr.pts * st.time_base)
            if t < next_t - 1e-6:
                continue
            while next_t <= t + 1e-6:
                next_t += 1 / fps
            for f in det.detect(rgb, min_face=20):
                if f.score >= 0.9:
                    model([crop_face(rgb, f)])  # batch 1
                    faces_done += 1
    return faces_done


def baseline_image(data: bytes, det, model) -> int:
    from sleuth.models.faces import decode_rgb
    from sleuth.pipelines.faces import crop_face

    rgb = decode_rgb(data)
    n = 0
    for f in det.detect(rgb, min_face=20):
        if f.score >= 0.9:
            model([crop_face(rgb, f)])
            n += 1
    return n


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--images", type=int, default=5)
    args = ap.parse_args()
    if "SLEUTH_MODEL_MIRROR" not in os.environ and (DATA / "models").is_dir():
        os.environ["SLEUTH_MODEL_MIRROR"] = str(DATA / "models")
    from PIL import Image

    from sleuth.engine.runtime import cpu_count
    from sleuth.pipelines.deepfake_vision import analyze_image, load_default_models
    from sleuth.pipelines.video import analyze_video

    det, model = load_default_models(["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as td:
        clip = make_1080p(Path(td) / "clip1080p.mp4", args.seconds)
        res = analyze_video(clip, det, model, fps=2.0)
        print(
            f"clip: 1920x1080, {args.seconds:.0f} s at 25 fps, {res['frames_sampled']} frames sampled, "
            f"{res['faces_analysed']} faces, cores={cpu_count()}"
        )
        t_ours = best(lambda: analyze_video(clip, det, model, fps=2.0), args.repeat)
        t_base = best(lambda: baseline_video(clip, det, model), args.repeat)
        print(f"{'video @2fps':24s} {'sleuth':>12s} {'baseline':>12s} {'ratio':>7s}")
        print(
            f"{'video-s per second':24s} {args.seconds / t_ours:12.2f} {args.seconds / t_base:12.2f} "
            f"{t_base / t_ours:6.2f}x"
        )
        import av

        with av.open(str(clip)) as c:
            frame = next(iter(c.decode(video=0))).to_image()
    buf = io.BytesIO()
    frame.save(buf, format="JPEG", quality=92)
    jpeg = buf.getvalue()
    assert Image.open(io.BytesIO(jpeg)).size == (1920, 1080)

    def ours() -> None:
        for _ in range(args.images):
            analyze_image(jpeg, det, model)

    def base() -> None:
        for _ in range(args.images):
            baseline_image(jpeg, det, model)

    t_ours = best(ours, args.repeat)
    t_base = best(base, args.repeat)
    print(f"{'image 1080p JPEG':24s} {'sleuth':>12s} {'baseline':>12s} {'ratio':>7s}")
    print(
        f"{'images per second':24s} {args.images / t_ours:12.2f} {args.images / t_base:12.2f} {t_base / t_ours:6.2f}x"
    )


if __name__ == "__main__":
    main()
