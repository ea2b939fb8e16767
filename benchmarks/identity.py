"""Voice identity separation on the shared real speech: same-speaker vs different-speaker, as identity search sees it.

Embeds every real utterance of ``../shared/data/audio`` (LibriSpeech test-other, 5 speakers x 8 utterances) with the
served speaker encoder (``sleuth.models.speaker``, our own VAD and mel front end) and reports:

* **pairs**: cosine similarity of every pair of utterances, same speaker vs different speakers: the equal error
  rate (EER) and its threshold, and the false-accept / false-reject rates at ``SAME_SPEAKER_COSINE`` (the
  threshold where ``confidence`` is 0.5, ``sleuth.services.identity``);
* **search, one enrolment file** (what ``POST /identity`` stores): for each utterance index ``e``, every speaker
  enrolled with its utterance ``e``, every other utterance searched: top-1 accuracy;
* **search, leave one utterance out**: every speaker enrolled with the mean embedding of its other 7 utterances,
  the held-out one searched: top-1 accuracy and the EER of query-vs-identity scores;
* the embedding's real-time factor: seconds of audio embedded per second (front end + ONNX, this machine's CPU).

Usage::

    python benchmarks/identity.py [--data ../shared/data/audio] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np


def eer(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(EER, threshold): the cosine where the false-reject rate of ``same`` meets the false-accept rate of ``diff``
    (when the two sets separate, the midpoint of the gap between them)."""
    if same.min() > diff.max():
        return 0.0, float(same.min() + diff.max()) / 2
    best = (1.0, 0.0)
    for t in np.unique(np.concatenate([same, diff])):
        frr = float(np.mean(same < t))
        far = float(np.mean(diff >= t))
        gap = abs(frr - far)
        if gap < best[0] or (gap == best[0] and t < best[1]):
            best = (gap, float(t))
    t = best[1]
    return (float(np.mean(same < t)) + float(np.mean(diff >= t))) / 2, t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/audio")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = ap.parse_args()

    from sleuth.engine.registry import get_model
    from sleuth.media.audio import decode_audio
    from sleuth.services.identity import SAME_SPEAKER_COSINE

    model = get_model("resemblyzer")
    manifest = json.loads((args.data / "manifest.json").read_text())
    files = sorted((f for f in manifest["files"] if f["label"] == "real"), key=lambda f: f["path"])
    speakers = sorted({f["speaker"] for f in files})
    emb = {}
    audio_s = embed_s = 0.0
    model.embed(decode_audio(args.data / files[0]["path"])[0])  # type: ignore[attr-defined]  # warm-up
    for f in files:
        wav, sr = decode_audio(args.data / f["path"])
        t0 = time.perf_counter()
        emb[f["path"]] = (f["speaker"], model.embed(wav))  # type: ignore[attr-defined]
        embed_s += time.perf_counter() - t0
        audio_s += len(wav) / sr
    by_spk = {s: [e for p, (sp, e) in sorted(emb.items()) if sp == s] for s in speakers}

    same, diff = [], []
    for (s1, e1), (s2, e2) in itertools.combinations(emb.values(), 2):
        (same if s1 == s2 else diff).append(float(e1 @ e2))
    same_a, diff_a = np.array(same), np.array(diff)
    pair_eer, pair_t = eer(same_a, diff_a)

    n_utt = min(len(v) for v in by_spk.values())
    hits = total = 0
    for e in range(n_utt):
        enrolled = np.stack([by_spk[s][e] for s in speakers])
        for si, s in enumerate(speakers):
            for q in (x for i, x in enumerate(by_spk[s]) if i != e):
                hits += int(np.argmax(enrolled @ q) == si)
                total += 1
    one_file_top1 = hits / total

    loo_hits = loo_total = 0
    tgt, non = [], []
    for si, s in enumerate(speakers):
        for qi, q in enumerate(by_spk[s]):
            ids = []
            for s2 in speakers:
                rest = [x for i, x in enumerate(by_spk[s2]) if not (s2 == s and i == qi)]
                m = np.mean(rest, axis=0)
                ids.append(m / np.linalg.norm(m))
            scores = np.stack(ids) @ q
            loo_hits += int(np.argmax(scores) == si)
            loo_total += 1
            tgt.append(float(scores[si]))
            non.extend(float(x) for j, x in enumerate(scores) if j != si)
    loo_eer, loo_t = eer(np.array(tgt), np.array(non))

    out = {
        "utterances": len(emb),
        "speakers": len(speakers),
        "pairs_same": len(same),
        "pairs_different": len(diff),
        "cosine_same_mean": round(float(same_a.mean()), 4),
        "cosine_different_mean": round(float(diff_a.mean()), 4),
        "cosine_same_min": round(float(same_a.min()), 4),
        "cosine_different_max": round(float(diff_a.max()), 4),
        "pair_eer": round(pair_eer, 4),
        "pair_eer_threshold": round(pair_t, 4),
        "at_confidence_0.5": {
            "threshold": SAME_SPEAKER_COSINE,
            "false_reject": round(float(np.mean(same_a < SAME_SPEAKER_COSINE)), 4),
            "false_accept": round(float(np.mean(diff_a >= SAME_SPEAKER_COSINE)), 4),
        },
        "search_one_file_top1": round(one_file_top1, 4),
        "search_one_file_queries": total,
        "search_loo_top1": round(loo_hits / loo_total, 4),
        "search_loo_queries": loo_total,
        "search_loo_eer": round(loo_eer, 4),
        "search_loo_eer_threshold": round(loo_t, 4),
        "audio_seconds": round(audio_s, 1),
        "embed_real_time_factor": round(audio_s / embed_s, 1),
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for k, v in out.items():
        print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
