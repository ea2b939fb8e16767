#!/usr/bin/env python3
"""Choose the face-track decision threshold of video verdicts: ``src/sleuth/data/calibration/deepfake-faces.json``.

The face track's score is what ``video_metrics.score`` reports: the mean, over sampled frames with a face, of the
most suspicious face's MesoNet P(fake) (``sleuth.pipelines.video``). This script computes it with the service's own
pipeline (MTCNN + the default ``mesonet`` ensemble, 2 fps, the first ``--secs`` seconds) for every clip of the shared
FaceForensics++ set (``../shared/data/video/manifest.json``: 3 real, 4 fake) and chooses the threshold by the rule
the audio verdict uses: no more real media called fake than allowed (at most 5 %, so with two or three real clips
none), then as many fakes caught as possible, the threshold in the middle of the gap it falls in.

Held out: leave-one-identity-out (the real clip of a person and the fakes made from it are held out together, so
a threshold is never tested on a face it was chosen on) and, for comparison, leave-one-clip-out. The shipped
threshold is the one chosen on all clips; the held-out figures say how it generalises, which with seven clips is
only a rough indication (reported with Wilson 95 % intervals).

Usage: ``SLEUTH_MODEL_MIRROR=../shared/data/models python scripts/calibrate_faces.py [--scores scores.json]``
(``--scores`` reuses scores computed by an earlier run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audio_calibrate  # noqa: E402  (the sibling script: one Wilson interval)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "sleuth" / "data" / "calibration" / "deepfake-faces.json"
MAX_FALSE_ALARM = 0.05


def clip_scores(data: Path, secs: float) -> list[dict[str, Any]]:
    from sleuth.engine.registry import get_model
    from sleuth.pipelines.video import analyze_video

    man = json.loads((data / "video" / "manifest.json").read_text())
    out = []
    for rec in man["files"]:
        res = analyze_video(
            data / "video" / rec["path"], get_model("mtcnn"), get_model("mesonet"), fps=2.0, max_video_secs=secs
        )
        vm = res["video_metrics"]
        ident = rec.get("target_id") or rec["path"]
        out.append({"path": rec["path"], "label": rec["label"], "identity": str(ident), "score": vm["score"]})
        print(f"{rec['path']:40s} {rec['label']:5s} {vm['score']}", flush=True)
    return out


def choose(reals: list[float], fakes: list[float], max_fa: float = MAX_FALSE_ALARM) -> float:
    """Lowest-miss threshold with at most ``max_fa`` of ``reals`` at or above it; mid-gap between neighbours."""
    allowed = math.floor(max_fa * len(reals))  # reals that may score >= threshold
    ranked = sorted(reals, reverse=True)
    floor_ = ranked[allowed] if allowed < len(ranked) else 0.0  # the threshold must be above this real
    above = sorted(s for s in fakes if s > floor_)
    nxt = above[0] if above else 1.0
    return round((floor_ + nxt) / 2, 6)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of scripts/audio_calibrate.py, to 3 decimals."""
    lo, hi = audio_calibrate.wilson(k, n)
    return (round(lo, 3), round(hi, 3))


def held_out(clips: list[dict[str, Any]], key: str) -> dict[str, Any]:
    calls = []
    for group in sorted({c[key] for c in clips}):
        train = [c for c in clips if c[key] != group and c["score"] is not None]
        reals = [c["score"] for c in train if c["label"] == "real"]
        t = choose(reals, [c["score"] for c in train if c["label"] == "fake"])
        for c in clips:
            if c[key] == group and c["score"] is not None:
                calls.append({"path": c["path"], "label": c["label"], "threshold": t, "fake": c["score"] >= t})
    reals = [c for c in calls if c["label"] == "real"]
    fakes = [c for c in calls if c["label"] == "fake"]
    fa, hit = sum(c["fake"] for c in reals), sum(c["fake"] for c in fakes)
    return {
        "split": f"leave-one-{key}-out",
        "false_alarms": f"{fa}/{len(reals)}",
        "false_alarm_ci95": wilson(fa, len(reals)),
        "fake_recall": f"{hit}/{len(fakes)}",
        "fake_recall_ci95": wilson(hit, len(fakes)),
        "calls": calls,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--secs", type=float, default=10.0)
    ap.add_argument("--scores", type=Path, help="reuse per-clip scores (JSON list written by an earlier run)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    clips = json.loads(args.scores.read_text()) if args.scores else clip_scores(args.data, args.secs)
    scored = [c for c in clips if c["score"] is not None]
    reals = [c["score"] for c in scored if c["label"] == "real"]
    fakes = [c["score"] for c in scored if c["label"] == "fake"]
    t = choose(reals, fakes)
    table = {
        "format": 1,
        "kind": "faces",
        "model": "mesonet",
        "score": "video_metrics.score: mean over sampled frames with a face of the top face's MesoNet P(fake)",
        "threshold": t,
        "rule": f"at most {MAX_FALSE_ALARM:.0%} of real clips at or above; then fewest fakes missed; mid-gap",
        "chosen_on": "../shared/data/video (FaceForensics++ c23, 3 real + 4 fake clips), 2 fps, "
        f"first {args.secs:g} s (scripts/calibrate_faces.py)",
        "clips": clips,
        "held_out": [held_out(scored, "identity"), held_out(scored, "path")],
    }
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(json.dumps({k: v for k, v in table.items() if k != "clips"}, indent=1))


if __name__ == "__main__":
    main()
