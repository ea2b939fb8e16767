"""Media the browser test makes for the deepfake image and video views (used for the screenshots in docs/).

Both are built from MesoNet's own test face crops in ``../shared/data/faces`` (Apache-2.0 repository): a still
with one face on a plain background, and a short H.264 video in which that face drifts across the frame, with a
spoken track from espeak-ng when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def _canvas(face_path: Path, size: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    w, h = size
    img = Image.new("RGB", (w, h), (92, 110, 104))
    face = Image.open(face_path).convert("RGB").resize((h // 2, h // 2))
    img.paste(face, offset)
    return np.asarray(img)


def face_image(face_path: Path, out: Path) -> Path:
    from PIL import Image

    Image.fromarray(_canvas(face_path, (640, 480), (200, 110))).save(out, quality=92)
    return out


def _speech(seconds: float) -> np.ndarray | None:
    if shutil.which("espeak-ng") is None:
        return None
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        text = "This clip was made for the browser test of the web app. The face moves slowly across the frame."
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        data, sr = sf.read(str(wav), dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    n = int(seconds * 16000)
    idx = np.linspace(0, len(data) - 1, num=int(len(data) * 16000 / sr)).astype(np.int64)
    data = data[idx]
    return np.pad(data, (0, max(0, n - len(data))))[:n]


def face_video(face_path: Path, out: Path, seconds: float = 6.0, fps: int = 10) -> Path:
    import av

    audio = _speech(seconds)
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        frames = int(seconds * fps)
        for i in range(frames):
            x = int(40 + (640 - 180 - 80) * i / max(1, frames - 1))
            rgb = _canvas(face_path, (640, 360), (x, 90))
            for pkt in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
        if a is not None and audio is not None:
            step = 1024
            for start in range(0, len(audio), step):
                chunk = audio[start : start + step]
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
                frame.sample_rate = 16000
                frame.pts = start
                for pkt in a.encode(frame):
                    c.mux(pkt)
            for pkt in a.encode():
                c.mux(pkt)
    return out
