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
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit("../shared/data is needed")
    if args.eval:
        run_eval(args)
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
