"""Golden outputs of the upstream Resemblyzer package, for tests/identity/test_speaker_parity.py.

Run it in a THROWAWAY venv that has the upstream package (never in the project's venv):

    python3 -m venv .venvs/resemblyzer
    .venvs/resemblyzer/bin/pip install torch==2.13.0
    .venvs/resemblyzer/bin/pip install resemblyzer==0.1.4 "setuptools<70"   # librosa 0.11, webrtcvad 2.0.10
    .venvs/resemblyzer/bin/python scripts/golden/resemblyzer_golden.py ../shared/data/audio \
        tests/identity/golden/resemblyzer.json

For each of a few shared real speech files (utterances 0000 and 0001 of every speaker) it records:

- ``embedding``: ``VoiceEncoder().embed_utterance(preprocess_wav(path))``, the upstream end to end (WebRTC VAD);
- ``kept_windows``: which 30 ms windows of the volume-normalised waveform upstream's silence trimming kept, as
  ``[start, stop)`` runs of window indices (recovered by matching the trimmed waveform against the windows), so
  that the test can feed our encoder exactly upstream's input and check the model and the mel front end alone;
- ``mel_head``: the first 3 frames of ``wav_to_mel_spectrogram`` of that trimmed waveform (front-end parity);
- ``n_partials``: how many 1.6 s partials upstream embedded.

The file is small JSON (values rounded to 7 significant digits).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import librosa
import numpy as np
import resemblyzer
from resemblyzer import VoiceEncoder, audio, hparams, preprocess_wav

WINDOW = hparams.vad_window_length * hparams.sampling_rate // 1000


def kept_runs(normalised: np.ndarray, trimmed: np.ndarray) -> list[list[int]]:
    n = len(normalised) // WINDOW
    runs: list[list[int]] = []
    pos = 0
    for i in range(n):
        w = normalised[i * WINDOW : (i + 1) * WINDOW]
        if pos + WINDOW <= len(trimmed) and np.array_equal(trimmed[pos : pos + WINDOW], w):
            pos += WINDOW
            if runs and runs[-1][1] == i:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
    if pos != len(trimmed):
        raise SystemExit("could not match the trimmed waveform to whole windows")
    return runs


def r(x: np.ndarray) -> list[float]:
    return [float(f"{v:.7g}") for v in np.asarray(x, dtype=np.float64).ravel()]


def main(data: Path, out: Path) -> None:
    manifest = json.loads((data / "manifest.json").read_text())
    files = [f for f in manifest["files"] if f["label"] == "real" and f["path"].endswith(("-0000.flac", "-0001.flac"))]
    enc = VoiceEncoder(device="cpu", verbose=False)
    records = []
    for f in sorted(files, key=lambda f: f["path"]):
        path = data / f["path"]
        raw, sr = librosa.load(str(path), sr=None)
        assert sr == hparams.sampling_rate, sr
        normalised = audio.normalize_volume(raw, hparams.audio_norm_target_dBFS, increase_only=True)
        trimmed = preprocess_wav(path)
        _embed, partials, _slices = enc.embed_utterance(trimmed, return_partials=True)
        records.append(
            {
                "path": f["path"],
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "speaker": f["speaker"],
                "kept_windows": kept_runs(normalised, trimmed),
                "n_samples_trimmed": len(trimmed),
                "n_partials": len(partials),
                "mel_head": [r(row) for row in audio.wav_to_mel_spectrogram(trimmed)[:3]],
                "embedding": r(enc.embed_utterance(trimmed)),
            }
        )
        print(f["path"], len(partials), file=sys.stderr)
    doc = {
        "generator": "scripts/golden/resemblyzer_golden.py",
        "upstream": f"resemblyzer=={getattr(resemblyzer, '__version__', '0.1.4')}",
        "librosa": librosa.__version__,
        "window_samples": WINDOW,
        "files": records,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
