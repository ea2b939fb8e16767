"""Audio decoding: bytes or a path (wav, flac, mp3, ogg, m4a, aac, and the audio track of mp4/mov/mkv/webm/avi)
-> ``(float32 mono, 16000)``, and fitting a window to the models' input length.

Plain numpy / soundfile / PyAV / scipy. Bad input raises ``ValueError``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
NB_SAMP = 64600  # the models' window: 4.04 s at 16 kHz
DEFAULT_MAX_DURATION_S = 600.0
MIN_DURATION_S = 0.1  # shorter audio is rejected (tiling 1600 samples 40x is already a stretch)
MAX_CHANNELS = 64
SAMPLE_RATE_RANGE = (1000, 768000)

# Containers libsndfile cannot read: go straight to PyAV.
PYAV_EXTENSIONS = frozenset(
    {".m4a", ".aac", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".wma", ".opus", ".3gp"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".3gp"})
_BLOCK = 1 << 16


def _suffix(name: str | None) -> str:
    return Path(name).suffix.lower() if name else ""


def _check_format(sr: int, channels: int, what: str) -> None:
    if not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        raise ValueError(f"{what}: unsupported sample rate {sr} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{what}: unsupported channel count {channels}")


def _too_long(what: str, max_duration_s: float) -> ValueError:
    return ValueError(f"{what}: audio is longer than the limit of {max_duration_s:g} s")


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> float32 (frames,), mean over channels (float64 accumulation)."""
    if block.shape[1] == 1:
        return np.array(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float64).astype(np.float32)


def _decode_soundfile(src: Any, what: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(src) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        _check_format(sr, channels, what)
        cap = int(math.ceil(max_duration_s * sr))
        parts: list[np.ndarray] = []
        total = 0
        # Read until EOF in bounded blocks: never trust the header's frame count.
        while True:
            block = f.read(_BLOCK, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            total += block.shape[0]
            if total > cap:
                raise _too_long(what, max_duration_s)
            parts.append(_mono(block))
    wave = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return wave, sr


def _decode_pyav(src: Any, what: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(src, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ValueError(f"{what}: not a readable audio or video file ({exc})") from exc
    with container:
        if not container.streams.audio:
            kind = "video file has no audio track" if container.streams.video else "no audio track found"
            raise ValueError(f"{what}: {kind}")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or 1)
        _check_format(sr, channels, what)
        cap = int(math.ceil(max_duration_s * sr))
        resampler = av.AudioResampler(format="fltp", rate=sr)  # keep layout, planar float32
        parts: list[np.ndarray] = []
        total = 0

        def take(frames: Sequence[Any]) -> None:
            nonlocal total
            for fr in frames:
                arr = fr.to_ndarray()  # (channels, n) float32
                if arr.ndim != 2 or arr.shape[1] == 0:
                    continue
                total += arr.shape[1]
                if total > cap:
                    raise _too_long(what, max_duration_s)
                parts.append(_mono(arr.T))

        try:
            for frame in container.decode(stream):
                take(resampler.resample(frame))
            take(resampler.resample(None))
        except av.FFmpegError as exc:
            if not parts:  # nothing usable; a truncated tail after good audio is tolerated
                raise ValueError(f"{what}: cannot decode the audio track ({exc})") from exc
    wave = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return wave, sr


def resample_to(x: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample mono audio to ``target_sr`` -> float32.

    ``scipy.signal.resample_poly`` (float64, default Kaiser window) with the reduced
    ratio ``target/g : sr/g`` - exactly what the golden outputs used, so a 22.05 kHz file
    gives the same model input bit for bit (soxr HQ moves AASIST's logits by ~0.006, see
    docs/performance.md). Rates whose reduced ratio is unwieldy (numerator or denominator
    > 1000, e.g. 44101 Hz) fall back to soxr HQ.
    """
    if sr == target_sr:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(int(sr), int(target_sr))
    up, down = target_sr // g, sr // g
    if max(up, down) > 1000:
        import soxr

        return np.asarray(soxr.resample(np.asarray(x, dtype=np.float64), sr, target_sr, "HQ"), dtype=np.float32)
    from scipy.signal import resample_poly

    return np.asarray(resample_poly(np.asarray(x, dtype=np.float64), up, down), dtype=np.float32)


def decode_audio(
    data: bytes | bytearray | memoryview | str | Path,
    filename: str | None = None,
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    target_sr: int = SAMPLE_RATE,
) -> tuple[np.ndarray, int]:
    """Decode an audio file (or a video's first audio track) to ``(float32 mono, target_sr)``.

    ``data`` is the file's bytes or a path; ``filename`` (or the path) is only a hint for
    the container type. libsndfile (soundfile) reads wav/flac/ogg/mp3 and friends; m4a,
    aac and video containers, and anything libsndfile refuses, go through PyAV (FFmpeg).
    Channels are averaged to mono; the result is resampled with :func:`resample_to`.
    Samples are float32 in [-1, 1] (integer PCM scaled by 1/32768 etc., no normalisation).

    Raises ``ValueError`` for empty or undecodable input, a file without an audio track,
    absurd sample rates / channel counts, no decoded samples, or more than
    ``max_duration_s`` seconds of audio (counted while decoding, so a lying header cannot
    make us allocate more than that).
    """
    if max_duration_s <= 0:
        raise ValueError("max_duration_s must be positive")
    if isinstance(data, (str, Path)):
        path = Path(data)
        what = filename or path.name
        if not path.is_file():
            raise ValueError(f"{what}: no such file")
        if path.stat().st_size == 0:
            raise ValueError(f"{what}: empty file (0 bytes)")
        sf_src: Any = str(path)
        av_src: Any = str(path)
        ext = _suffix(filename) or _suffix(path.name)
    else:
        raw = bytes(data)
        what = filename or "audio"
        if not raw:
            raise ValueError(f"{what}: empty file (0 bytes)")
        sf_src = io.BytesIO(raw)
        av_src = io.BytesIO(raw)
        ext = _suffix(filename)

    if ext in PYAV_EXTENSIONS:
        wave, sr = _decode_pyav(av_src, what, max_duration_s)
    else:
        import soundfile as sf

        try:
            wave, sr = _decode_soundfile(sf_src, what, max_duration_s)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            # not a libsndfile format (or a broken one): let FFmpeg try before giving up
            wave, sr = _decode_pyav(av_src, what, max_duration_s)
    if wave.size == 0:
        raise ValueError(f"{what}: no audio samples decoded")
    if not np.isfinite(wave).all():
        raise ValueError(f"{what}: decoded audio contains NaN or infinite samples")
    return resample_to(wave, sr, target_sr), target_sr


def fit_window(x: np.ndarray, n: int = NB_SAMP) -> np.ndarray:
    """First ``n`` samples, or ``np.tile`` a shorter window up to ``n`` (upstream ``pad``)."""
    if x.shape[0] == 0:
        raise ValueError("empty audio window")
    if x.shape[0] >= n:
        return np.ascontiguousarray(x[:n], dtype=np.float32)
    return np.ascontiguousarray(np.tile(x, n // x.shape[0] + 1)[:n], dtype=np.float32)
