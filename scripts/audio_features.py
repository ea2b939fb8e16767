"""Score every calibration clip with the audio detectors, windowed exactly as the service does.

For each file (the shared real/fake speech in ``../shared/data/audio`` and the set made by
``scripts/speech_corpus.py``): decode to 16 kHz, 2 s frames, "surround" context
(:func:`sleuth.pipelines.audio.chunk_windows`), then for each model the per-window logits and
the penultimate embedding (AASIST / AASIST-L: 160-d / 120-d ``embedding``; RawGAT-ST: 7-d
``penultimate``). Identical windows (clips shorter than 4.04 s are one tiled window) are
scored once. Writes ``OUT/features_<model>.npz`` with ``owner`` (index of each window's file),
``logits``, ``embedding`` and ``OUT/files.json``.

    PYTHONPATH=src python scripts/audio_features.py --corpus .cache/speech --models aasist,aasist-l,rawgat-st
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "data" / "audio"

SHARED_FAMILY = {"espeak-ng": "formant", "festival": None, "flite": "hmm", "piper-tts (VITS)": "neural"}


def shared_records() -> list[dict]:
    man = json.loads((SHARED_AUDIO / "manifest.json").read_text())
    out = []
    for f in man["files"]:
        r = {"path": str(SHARED_AUDIO / f["path"]), "label": f["label"], "source": "shared"}
        if f["label"] == "real":
            r["speaker"] = f["speaker"]
        else:
            eng = f["engine"]
            name = Path(f["path"]).stem
            r["engine"] = {"piper-tts (VITS)": "piper"}.get(eng, eng)
            r["voice"] = name.rsplit("_", 1)[0]
            fam = SHARED_FAMILY.get(eng)
            if eng == "festival":
                fam = "diphone" if "kal" in name else "hmm"
            r["family"] = fam
            r["sentence"] = -1  # texts not recorded: unseen sentences
        out.append(r)
    return out


CROP_S = (1.0, 4.0)  # seconds [start, end) of each real file kept as a short "crop" record


def windows_of(path: str, crop: tuple[float, float] | None = None) -> list[np.ndarray]:
    from sleuth.media.audio import decode_audio
    from sleuth.pipelines.audio import chunk_windows, plan_chunks

    wave, sr = decode_audio(path, Path(path).name)
    if crop is not None:  # a short clip, as an upload of 3 s would be: tiled to 4.04 s like every short fake
        wave = wave[int(crop[0] * sr) : int(crop[1] * sr)]
    chunks = plan_chunks(len(wave), sr, 2.0)
    region = (min(c.start for c in chunks), max(c.end for c in chunks))
    return chunk_windows(wave, chunks, context="surround", region=region)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--models", default="aasist")
    ap.add_argument("--only-new", action="store_true", help="score only records not in existing feature files")
    args = ap.parse_args(argv)
    from sleuth.engine.registry import get_model

    gen = json.loads((args.corpus / "manifest.json").read_text())["files"]
    records = shared_records() + [dict(r, path=str(args.corpus / r["path"]), source="generated") for r in gen]
    # short crops of every real file: most generated fakes are < 4.04 s (one tiled window), most reals longer,
    # so without these a head could learn "tiled = fake"
    records += [dict(r, source="crop", crop=list(CROP_S)) for r in shared_records() if r["label"] == "real"]
    (args.corpus / "files.json").write_text(json.dumps(records, indent=1))
    wins: list[np.ndarray] = []
    owner: list[int] = []
    for i, r in enumerate(records):
        ws = windows_of(r["path"], tuple(r["crop"]) if r.get("crop") else None)
        uniq = {w.tobytes(): w for w in ws}  # identical windows once
        wins.extend(uniq.values())
        owner.extend([i] * len(uniq))
    print(f"{len(records)} files, {len(wins)} windows", file=sys.stderr)
    for name in args.models.split(","):
        m = get_model(name)
        old = args.corpus / f"features_{name}.npz"
        start = 0
        prev: dict[str, np.ndarray] = {}
        if args.only_new and old.exists():
            prev = dict(np.load(old))
            done = int(prev["owner"].max()) + 1
            start = int(np.searchsorted(np.asarray(owner), done))
        emb_name = [o.name for o in m.session.get_outputs() if o.name != "logits"][0]
        t0 = time.time()
        lo, em = [], []
        for a in range(start, len(wins), 2):
            x = np.stack(wins[a : a + 2])
            out = m.session.run(["logits", emb_name], {"wave": x})
            lo.append(out[0])
            em.append(out[1])
            if a % 100 == 0:
                print(f"{name}: {a}/{len(wins)} {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        logits, emb = np.concatenate(lo), np.concatenate(em)
        if prev:
            logits, emb = np.concatenate([prev["logits"], logits]), np.concatenate([prev["embedding"], emb])
        np.savez(old, owner=np.asarray(owner), logits=logits, embedding=emb)
        print(f"{name}: done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
