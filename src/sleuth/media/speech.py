"""Speech front end of the speaker encoder (sleuth.models.speaker): volume, silence trimming, mel frames, partials.

Parameters are those the Resemblyzer voice encoder was trained with (its ``hparams``): 16 kHz mono, a 25 ms /
10 ms mel analysis with 40 channels, partial utterances of 160 frames (1.6 s) taken 1.3 times a second, the last one
kept when at least 75 % of it is real audio. Written here with numpy only:

- :func:`normalize_volume`: scale the waveform to -30 dBFS RMS, never down (``increase_only``);
- :func:`voiced_mask` / :func:`trim_long_silences`: 30 ms windows flagged as speech, smoothed by a moving average
  of 8 windows, dilated by 7 windows, so that silences longer than about 0.2 s are cut out. The upstream flags
  windows with WebRTC's VAD; ours is an energy detector (a window is speech when it is within
  :data:`VAD_RANGE_DB` of the loud end of the recording and above an absolute floor), which keeps the same
  segments on clean speech (the parity test measures the cost on the shared speech);
- :func:`mel_spectrogram`: power (not log) mel spectrogram, ``n_fft`` 400, hop 160, periodic Hann window, frames
  centred with zero padding, Slaney-style mel filters normalised by band width;
- :func:`partial_slices`: the frame ranges of the partial utterances.

Bad input (no speech left after trimming) raises :class:`NoSpeechError`, a ``ValueError``.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
RATE = 1.3  # partial utterances per second
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
VAD_WINDOW = 480  # 30 ms
VAD_AVERAGE = 8
VAD_MAX_SILENCE = 6
VAD_RANGE_DB = 20.0  # a window this far below the recording's loud end (95th percentile) is silence
VAD_FLOOR_DBFS = -50.0  # and any window below this is silence
MIN_SPEECH_S = 0.5  # less voiced audio than this is "no speech"
INT16_MAX = 32767


class NoSpeechError(ValueError):
    """No (or too little) speech in the audio for a voice embedding."""


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise the level to ``target_dbfs`` RMS (in 16-bit full scale); louder audio is returned as it is."""
    x = np.asarray(wav, dtype=np.float32)
    rms = float(np.sqrt(np.mean((x.astype(np.float64) * INT16_MAX) ** 2))) if x.size else 0.0
    if rms <= 0.0:
        return x
    change = target_dbfs - 20.0 * np.log10(rms / INT16_MAX)
    if change < 0:
        return x
    return (x * np.float32(10.0 ** (change / 20.0))).astype(np.float32)


def window_flags(wav: np.ndarray) -> np.ndarray:
    """One bool per whole 30 ms window: is it speech (energy detector)."""
    n = len(wav) // VAD_WINDOW
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = np.asarray(wav[: n * VAD_WINDOW], dtype=np.float64).reshape(n, VAD_WINDOW)
    db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = float(np.percentile(db, 95))
    return np.asarray((db > loud - VAD_RANGE_DB) & (db > VAD_FLOOR_DBFS), dtype=bool)


def smooth_flags(flags: np.ndarray) -> np.ndarray:
    """Moving average over :data:`VAD_AVERAGE` windows (zero-padded, rounded), then dilated by
    ``VAD_MAX_SILENCE + 1`` windows: a window is kept when any window within 3 of it is voiced."""
    f = np.asarray(flags, dtype=np.float64)
    if f.size == 0:
        return np.zeros(0, dtype=bool)
    w = VAD_AVERAGE
    padded = np.concatenate((np.zeros((w - 1) // 2), f, np.zeros(w // 2)))
    avg = np.convolve(padded, np.ones(w), mode="valid") / w
    voiced = np.round(avg).astype(bool)
    k = VAD_MAX_SILENCE + 1
    half = k // 2
    grown = np.convolve(voiced.astype(np.int64), np.ones(k, dtype=np.int64), mode="full")
    # a centred structuring element of length k: output i sees inputs i-half .. i+(k-1-half)
    return np.asarray(grown[k - 1 - half : k - 1 - half + voiced.size] > 0, dtype=bool)


def voiced_mask(wav: np.ndarray) -> np.ndarray:
    """Which 30 ms windows :func:`trim_long_silences` keeps."""
    return smooth_flags(window_flags(wav))


def apply_window_mask(wav: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep the samples of the windows flagged in ``mask`` (the tail after the last whole window is dropped)."""
    n = len(mask) * VAD_WINDOW
    keep = np.repeat(np.asarray(mask, dtype=bool), VAD_WINDOW)
    return np.asarray(wav[:n][keep], dtype=np.float32)


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    return apply_window_mask(wav, voiced_mask(wav))


def preprocess(wav: np.ndarray) -> np.ndarray:
    """16 kHz float waveform -> what the encoder embeds (volume normalised, long silences cut).

    Raises :class:`NoSpeechError` when less than :data:`MIN_SPEECH_S` of speech is left.
    """
    x = normalize_volume(np.asarray(wav, dtype=np.float32))
    out = trim_long_silences(x)
    if out.size < MIN_SPEECH_S * SAMPLE_RATE:
        raise NoSpeechError(f"no speech found (under {MIN_SPEECH_S:g} s of voiced audio)")
    return out


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3.0)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3.0))


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters from 0 Hz to Nyquist, each scaled by 2 / its width in Hz."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sr / 2.0)), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / width[:-1, None]
    upper = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


_FILTERS = mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float64)  # periodic Hann


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """``(frames, 40)`` float32 power mel spectrogram; ``frames = 1 + len(wav) // 160``."""
    x = np.asarray(wav, dtype=np.float64)
    pad = N_FFT // 2
    x = np.pad(x, (pad, pad), mode="constant")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * _WINDOW, axis=1)) ** 2
    return np.asarray(spec @ _FILTERS.T, dtype=np.float32)


def partial_slices(n_samples: int, rate: float = RATE, min_coverage: float = MIN_COVERAGE) -> list[tuple[int, int]]:
    """Frame ranges ``[start, start + 160)`` of the partial utterances of an ``n_samples`` waveform.

    Starts are ``round(16000 / rate / 160)`` frames apart (77 at 1.3/s) and cover the whole waveform; the last
    range is dropped when under ``min_coverage`` of it lies inside the waveform (and it is not the only one).
    """
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round(SAMPLE_RATE / rate / HOP))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} out of range")
    stops = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    out = [(i, i + PARTIAL_FRAMES) for i in range(0, stops, step)]
    start = out[-1][0] * HOP
    coverage = (n_samples - start) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(out) > 1:
        out.pop()
    return out


def partial_mels(wav: np.ndarray) -> np.ndarray:
    """``(n_partials, 160, 40)`` float32: the mel frames of each partial utterance of a preprocessed waveform
    (zero-padded at the end when the last partial runs past it)."""
    x = np.asarray(wav, dtype=np.float32)
    slices = partial_slices(len(x))
    need = slices[-1][1] * HOP
    if need >= len(x):
        x = np.pad(x, (0, need - len(x)), mode="constant")
    mel = mel_spectrogram(x)
    return np.ascontiguousarray(np.stack([mel[a:b] for a, b in slices]), dtype=np.float32)
