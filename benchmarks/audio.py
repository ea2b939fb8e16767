"""Audio deepfake detection speed: real-time factor of our path vs straightforward PyTorch.

Runs, in one process, on the shared audio files (``../shared/data/audio``, 40 FLAC + 26 WAV,
first ``--files`` of them in manifest order, reals and fakes interleaved):

* **ours**: ``sleuth.pipelines.audio.detect_audio`` = decode (soundfile / PyAV) + resample
  to 16 kHz (scipy resample_poly) + ``frame_length`` windows scored by the ONNX model
  through the ``Model`` class (ORT, batches of ``max_batch_size``);
* **torch**: the same decode/resample/windows, then our PyTorch definition of the same
  network (``sleuth.convert.aasist`` / ``sleuth.convert.rawgat``, the one the ONNX was
  exported from), batch 1, one forward per window, in ``torch.no_grad()``.

The real-time factor (RTF) is seconds of audio processed per wall-clock second (higher is
better). Also prints the max |P(fake) difference| between the two paths, and with
``--eval`` the file-level AUCs of several chunking / aggregation choices.

Then the served, calibrated path (``detect_audio_calibrated``, AASIST + the committed head and threshold,
docs/audio-calibration.md): its RTF, the false-alarm rate and fake recall of the held-out split (the
cross-validated numbers ``scripts/audio_calibrate.py`` recorded in ``sleuth/data/calibration/audio.json``),
and live on data the served head never saw: the held-out speaker's files and, with espeak-ng installed,
fresh clips of sentences and voice variants not in its training set (``--no-calibrated`` skips it).

Usage::

    python benchmarks/audio.py [--models aasist,rawgat-st] [--files 24] [--frame-length 2]
    python benchmarks/audio.py --eval          # accuracy table for docs/performance.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
AUDIO = DATA / "audio"


def _manifest(n: int | None) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = json.loads((AUDIO / "manifest.json").read_text())["files"]
    real = [f for f in files if f["label"] == "real"]
    fake = [f for f in files if f["label"] == "fake"]
    mixed: list[dict[str, Any]] = []
    for i in range(max(len(real), len(fake))):
        mixed.extend(x[i] for x in (real, fake) if i < len(x))
    return mixed[:n] if n else mixed


def _settings() -> Any:
    from sleuth.settings import Settings

    s = Settings()
    if s.model_mirror is None:
        s = Settings(model_mirror=DATA / "models")
    return s


def _load(name: str) -> tuple[Any, dict[str, Path]]:
    from sleuth.engine.catalog import ensure, get_entry, import_object, load_catalog

    s = _settings()
    paths = ensure(name, s)
    model = import_object(get_entry(name, load_catalog(settings=s)).loader)()
    model.load(paths)
    return model, paths


def _torch_model(name: str, weights: Path) -> Any:
    if name == "rawgat-st":
        from sleuth.convert.rawgat import build_torch_model
    else:
        from sleuth.convert.aasist import build_torch_model
    return build_torch_model(weights)


def bench_ours(model: Any, files: list[Path], frame_length: float) -> tuple[float, list[float]]:
    from sleuth.pipelines.audio import detect_audio

    audio_s = 0.0
    scores: list[float] = []
    t0 = time.perf_counter()
    for f in files:
        r = detect_audio(model, f.read_bytes(), f.name, frame_length=frame_length)
        audio_s += r.duration_s
        scores.extend(c["score"] for c in r.chunks)
    return audio_s / (time.perf_counter() - t0), scores


def bench_torch(net: Any, files: list[Path], frame_length: float) -> tuple[float, list[float]]:
    import torch

    from sleuth.media.audio import decode_audio
    from sleuth.pipelines.audio import chunk_windows, plan_chunks

    audio_s = 0.0
    scores: list[float] = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for f in files:
            wave, sr = decode_audio(f.read_bytes(), f.name)
            audio_s += len(wave) / sr
            for w in chunk_windows(wave, plan_chunks(len(wave), sr, frame_length)):
                logits, _ = net(torch.from_numpy(w).unsqueeze(0))
                scores.append(float(torch.softmax(logits[0].double(), 0)[0]))
    return audio_s / (time.perf_counter() - t0), scores


def run_speed(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    recs = _manifest(args.files)
    files = [AUDIO / r["path"] for r in recs]
    total = sum(r["duration_s"] for r in recs)
    print(
        f"{len(files)} files, {total:.1f} s of audio, frame_length {args.frame_length} s, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'model':10s} {'ours RTF':>9s} {'torch RTF':>10s} {'ratio':>7s} {'max |dP|':>9s}")
    for name in args.models.split(","):
        model, paths = _load(name)
        net = _torch_model(name, paths["weights"])
        bench_ours(model, files[:1], args.frame_length)  # warm-up (ORT arena, caches)
        bench_torch(net, files[:1], args.frame_length)
        best_ours, best_torch = 0.0, 0.0
        s_ours: list[float] = []
        s_torch: list[float] = []
        for _ in range(args.repeats):
            r_o, s_ours = bench_ours(model, files, args.frame_length)
            r_t, s_torch = bench_torch(net, files, args.frame_length)
            best_ours, best_torch = max(best_ours, r_o), max(best_torch, r_t)
        diff = float(np.abs(np.asarray(s_ours) - np.asarray(s_torch)).max())
        print(f"{name:10s} {best_ours:9.2f} {best_torch:10.2f} {best_ours / best_torch:6.2f}x {diff:9.1e}")


UNSEEN = [
    ("en-us+m2", "Nobody expected the little orchestra to play so loudly tonight."),
    ("en-gb+f1", "The farmer sold his last two horses at the autumn market."),
    ("en-gb-scotland+m5", "A thin layer of frost covered the windows of the station."),
    ("en-029+f5", "Remember to switch off the lights before you leave the office."),
]


def _wilson(k: int, n: int, z: float = 1.96) -> str:
    if n == 0:
        return "0/0"
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / d
    return f"{k}/{n} = {p:.1%} [95% CI {max(0.0, c - h):.1%}, {min(1.0, c + h):.1%}]"


def run_calibrated(files: list[Path]) -> None:
    import shutil
    import subprocess
    import tempfile

    from sleuth.pipelines.audio import detect_audio_calibrated
    from sleuth.pipelines.audio_calibration import load_calibration

    cal = load_calibration()
    model, _ = _load(cal.model)
    detect_audio_calibrated(model, files[0])  # warm-up
    t0, audio_s = time.perf_counter(), 0.0
    for f in files:
        audio_s += detect_audio_calibrated(model, f).duration_s
    print(f"\ncalibrated path ({cal.raw['method']}, raw threshold {cal.threshold:.4f} served at 0.5)")
    print(f"  RTF {audio_s / (time.perf_counter() - t0):.2f} ({len(files)} files)")
    v = cal.raw["validation"]
    print("  held-out split (cross-validated: speaker, voice and sentence held out; scripts/audio_calibrate.py):")
    print(f"    false alarms on real speech  {_wilson(*v['false_alarms_held_out_speakers'])}")
    print(f"    fake recall                  {_wilson(*v['fake_recall_held_out_voice_and_sentence'])}")
    spk = cal.raw["trained_on"]["held_out_speaker"]
    reals = [r for r in json.loads((AUDIO / "manifest.json").read_text())["files"] if r.get("speaker") == spk]
    fa = sum(detect_audio_calibrated(model, AUDIO / r["path"]).metrics["label"] == "fake" for r in reals)
    print(f"  live, served head: speaker {spk} (never trained on) false alarms {_wilson(fa, len(reals))}")
    if shutil.which("espeak-ng"):
        hits = 0
        with tempfile.TemporaryDirectory() as tmp:
            for i, (voice, text) in enumerate(UNSEEN):
                out = Path(tmp) / f"u{i}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, timeout=60)
                hits += detect_audio_calibrated(model, out).metrics["label"] == "fake"
        print(f"  live, served head: unseen espeak-ng sentences/variants recall {_wilson(hits, len(UNSEEN))}")


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (pos.size * neg.size))


def run_eval(args: argparse.Namespace) -> None:
    """File-level AUC / false alarms for chunking and aggregation choices, per model and ensembles."""
    from sleuth.media.audio import decode_audio, fit_window
    from sleuth.pipelines.audio import chunk_windows, plan_chunks

    recs = _manifest(None)
    labels = np.array([r["label"] for r in recs])
    waves = [decode_audio(AUDIO / r["path"])[0] for r in recs]
    names = args.models.split(",")
    models = {n: _load(n)[0] for n in names}
    protocols: dict[str, Any] = {
        "first 4.04 s (upstream)": lambda w: [fit_window(w)],
        "4 s frames, tile": lambda w: chunk_windows(w, plan_chunks(len(w), 16000, 4.0)),
        "2 s frames, tile": lambda w: chunk_windows(w, plan_chunks(len(w), 16000, 2.0)),
        "2 s frames, surround": lambda w: chunk_windows(w, plan_chunks(len(w), 16000, 2.0), context="surround"),
    }
    fake, real = labels == "fake", labels == "real"
    print(f"{int(fake.sum())} fake vs {int(real.sum())} real; file score = aggregate of chunk P(fake)")
    print(
        f"{'protocol':26s} {'system':20s} {'AUC mean':>8s} {'AUC max':>8s} {'AUC med':>8s} "
        f"{'reals>=.5':>9s} {'fakes<.5':>8s}"
    )
    for pname, make in protocols.items():
        chunk_scores: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for w in waves:
            wins = make(w)
            for n in names:
                chunk_scores[n].append(np.asarray(models[n](wins)))
        systems = dict(chunk_scores)
        if len(names) > 1:
            systems["+".join(names)] = [np.mean([chunk_scores[n][i] for n in names], axis=0) for i in range(len(waves))]
        if {"aasist", "rawgat-st"} <= set(names) and len(names) > 2:
            systems["aasist+rawgat-st"] = [
                (chunk_scores["aasist"][i] + chunk_scores["rawgat-st"][i]) / 2 for i in range(len(waves))
            ]
        for sname, per_file in systems.items():
            agg = {
                k: np.array([f(s) for s in per_file])
                for k, f in (("mean", np.mean), ("max", np.max), ("med", np.median))
            }
            m = agg["mean"]
            print(
                f"{pname:26s} {sname:20s} "
                + " ".join(f"{_auc(a[fake], a[real]):8.3f}" for a in agg.values())
                + f" {int((m[real] >= 0.5).sum()):>6d}/{int(real.sum())} {int((m[fake] < 0.5).sum()):>5d}/"
                f"{int(fake.sum())}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="aasist,aasist-l,rawgat-st")
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--frame-length", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--eval", action="store_true", help="accuracy table instead of speed")
    ap.add_argument("--no-calibrated", action="store_true", help="skip the calibrated path's numbers")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit("../shared/data is needed")
    if args.eval:
        run_eval(args)
    else:
        run_speed(args)
        if not args.no_calibrated:
            run_calibrated([AUDIO / r["path"] for r in _manifest(args.files)])


if __name__ == "__main__":
    main()
