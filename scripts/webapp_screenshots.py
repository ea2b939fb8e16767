#!/usr/bin/env python3
"""Make the web app's screenshots in ``docs/screenshots/``: the browser test's walk through the app
(``tests/webapp/browser.mjs``, Debian's chromium) on a richer demo set, against a fresh local ``sleuth serve``.

Demo data: shared camera-trap images (``../shared/data/camera_traps``) plus a three-frame burst made from one of them
(EXIF times 0, 3 and 6 s apart, so the grid shows an event), shared speech (one real LibriSpeech file, one espeak-ng
file), and a still and a short video built around ``--face`` (the screenshots in docs/ use the NASA portrait of
Eileen Collins, public domain, which PyPI scikit-image ships as ``skimage/data/astronaut.png``). PNGs are reduced
to 256 colours to keep the repository small.

Usage (from the repository root, with the test requirements installed: ``npm ci`` in tests/webapp, chromium)::

    python scripts/webapp_screenshots.py --face astronaut.png [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "webapp")]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"


def burst(src: Path, out_dir: Path, seconds: tuple[int, ...] = (0, 3, 6)) -> list[Path]:
    from datetime import datetime, timedelta

    from PIL import Image

    img = Image.open(src)
    exif = img.getexif()
    start = datetime(2013, 3, 31, 16, 27, 36)
    out = []
    for i, s in enumerate(seconds):
        exif.get_ifd(0x8769)[36867] = (start + timedelta(seconds=s)).strftime("%Y:%m:%d %H:%M:%S")
        exif[306] = exif.get_ifd(0x8769)[36867]
        path = out_dir / f"IMAG0031_wolf_burst{i + 1}.jpg"
        img.save(path, quality=90, exif=exif.tobytes())
        out.append(path)
    return out


def shrink(folder: Path) -> None:
    from PIL import Image

    for png in sorted(folder.glob("*.png")):
        im = Image.open(png).convert("RGB")
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            png, optimize=True
        )
        print(f"{png.relative_to(ROOT)}: {png.stat().st_size // 1024} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", type=Path, required=True, help="A photo with one face (public domain or your own)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    import json

    from media import face_image, face_video
    from test_browser import make_key, missing, run_browser, server_env

    from support import live_server

    why = missing()
    if why:
        raise SystemExit(f"cannot run the browser: {why}")
    images = [
        CT / "speciesnet" / "domestic_dog.jpg",
        CT / "speciesnet" / "ocelot.jpg",
        CT / "animl_southwest" / "IMAG0004_cougar.JPG",
        CT / "speciesnet" / "blank.jpg",
        CT / "speciesnet" / "vehicle.jpg",
        CT / "animl_southwest" / "IMAG0046_bobcat.JPG",
    ]
    audio = [
        DATA / "audio" / "real" / "1998" / "1998-15444-0000.flac",
        DATA / "audio" / "fake" / "espeak-ng" / "espeak_1.wav",
    ]
    with tempfile.TemporaryDirectory(prefix="sleuth-shots-") as tmp:
        t = Path(tmp)
        images += burst(CT / "animl_southwest" / "IMAG0031_wolf.JPG", t)
        portrait = face_image(args.face, t / "portrait.jpg")
        clip = face_video(args.face, t / "interview.mp4")
        env = server_env(t / "data")
        key = make_key(env, "Sierra wildlife survey", "Ada Reviewer")
        shots = t / "shots"
        shots.mkdir()
        import os

        os.environ.update(
            DEPLOYMENT=json.dumps({"name": "Sierra Nevada pole 3", "lat": "36.6", "lon": "-118.1", "camera": "CAM-03"}),
            REVIEW_FILE="IMAG0004_cougar",
            REVIEW_LABEL="cougar",
        )
        with live_server(env) as url:
            report = run_browser(url, key, images, audio, t, shots, portrait, clip, timeout=900)
        if not report.get("ok") or report["consoleErrors"] or report["external"]:
            raise SystemExit(f"the walk through the app failed: {json.dumps(report, indent=1)[:4000]}")
        args.out.mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, args.out / png.name)
    shrink(args.out)


if __name__ == "__main__":
    main()
