"""Media the deepfake tests generate."""

from __future__ import annotations

import io
import wave

import numpy as np


def wav_bytes(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def detect_wait(c, auth, name, data, **fields):  # type: ignore[no-untyped-def]
    """POST /detect with ``Prefer: wait`` through a TestClient: the item of a 200 answer."""
    r = c.post("/detect", headers={**auth, "Prefer": "wait"}, files={"file": (name, data)}, data=fields)
    assert r.status_code == 200, r.text
    return r.json()["item"]
