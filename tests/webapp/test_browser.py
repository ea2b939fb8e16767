"""The web app in a real browser: Debian's chromium driven by playwright-core (``browser.mjs``) against a live
``sleuth serve`` with the real models, as a person would use it. See ``browser.mjs`` for the steps.

Needs node, ``npm ci`` in this folder (playwright-core only; it downloads no browser) and ``/usr/bin/chromium``;
``.ci/run`` installs them. ``SLEUTH_WEBAPP_SHOTS=DIR`` also writes a screenshot of each view there
(``scripts/webapp_screenshots.py`` makes the ones in docs/).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from media import face_image, face_video

from support import live_server
from validators import md_validate, validate_camtrap_dp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT.parent / "shared" / "data"
CHROMIUM = os.environ.get("SLEUTH_CHROMIUM", "/usr/bin/chromium")
IMAGES = ["speciesnet/domestic_dog.jpg", "speciesnet/ocelot.jpg", "animl_southwest/IMAG0004_cougar.JPG"]
AUDIO = ["audio/real/1998/1998-15444-0000.flac", "audio/fake/espeak-ng/espeak_1.wav"]


def missing() -> str | None:
    if not DATA.is_dir():
        return "../shared/data not present"
    if importlib.util.find_spec("torch") is None:
        return "torch (the convert extra) is needed once to build the models"
    if shutil.which("node") is None:
        return "node not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "playwright-core not installed: run `npm ci` in tests/webapp"
    return None


pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")


def server_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SLEUTH_DATA_DIR=str(data_dir),
        SLEUTH_WORKERS="2",
        SLEUTH_MODEL_MIRROR=str(DATA / "models"),
        SLEUTH_MODEL_CACHE=os.environ.get("SLEUTH_MODEL_CACHE", str(data_dir / "models")),
        SLEUTH_DETECTOR_PRECISION="int8",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    env.pop("SLEUTH_DATABASE_URL", None)
    return env


def make_key(env: dict[str, str], team: str, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "keys", "create", "--team", team, "--create-team", "--name", name],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def run_browser(
    url: str,
    key: str,
    images: list[Path],
    audio: list[Path],
    out: Path,
    shots: Path | None = None,
    extra_image: Path | None = None,
    extra_video: Path | None = None,
    timeout: int = 420,
) -> dict:
    env = dict(os.environ)
    env.update(
        BASE_URL=url,
        API_KEY=key,
        OUT=str(out),
        CHROMIUM=CHROMIUM,
        IMAGES=json.dumps([str(p) for p in images]),
        AUDIO=json.dumps([str(p) for p in audio]),
        SHOTS=str(shots or ""),
        EXTRA_IMAGE=str(extra_image or ""),
        EXTRA_VIDEO=str(extra_video or ""),
    )
    proc = subprocess.run(
        ["node", str(HERE / "browser.mjs")], env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"browser.mjs printed no report (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1])


def test_the_web_app_in_chromium(tmp_path):
    env = server_env(tmp_path / "data")
    key = make_key(env, "Field station", "Ada Reviewer")
    face = DATA / "faces" / "real" / "real00240.jpg"
    portrait, clip = face_image(face, tmp_path / "portrait.jpg"), face_video(face, tmp_path / "clip.mp4")
    shots = Path(os.environ["SLEUTH_WEBAPP_SHOTS"]) if os.environ.get("SLEUTH_WEBAPP_SHOTS") else None
    with live_server(env) as url:
        r = run_browser(
            url,
            key,
            [DATA / "camera_traps" / p for p in IMAGES],
            [DATA / a for a in AUDIO],
            tmp_path,
            shots,
            portrait,
            clip,
        )
        assert r.get("ok"), r.get("error")
        reviews = httpx.get(
            f"{url}/v1/reviews", params={"result_id": _job_of(url, key, r)}, headers={"Authorization": f"Bearer {key}"}
        ).json()

    assert r["external"] == [], "the page reached outside the server"
    assert r["consoleErrors"] == []
    # sign in: a wrong key is refused with the server's message; the key never lands in the URL or localStorage
    assert "Invalid API key" in r["wrongKeyError"]
    assert not r["keyInUrl"] and not r["keyInUrlAfterWrongKey"] and not r["keyInLocalStorage"]
    assert r["keyInSessionStorage"] and r["keyAfterSignOut"] is None
    # three images dropped, each shown with its boxes and labels; the deployment names the geofence country
    assert r["fileSummary"] == "3 images ready."
    assert sorted(c["file"] for c in r["cards"]) == sorted(Path(p).name for p in IMAGES)
    assert all(c["boxes"] >= 1 and all(t.strip() for t in c["tags"]) for c in r["cards"]), r["cards"]
    assert "USA (from the coordinates)" in r["deployment"]
    # filters run in the page
    assert r["requestsWhileFiltering"] == 0
    assert r["boxesAtHighConfidence"] < sum(c["boxes"] for c in r["cards"])
    assert r["countWithoutBlank"].startswith("0 of 3")
    # a corrected label, stored server-side under the reviewer's name
    assert r["labelAfter"].endswith("red fox") and r["statusAfter"] == "corrected"
    assert r["arrowRightMoved"]  # keyboard: the arrow keys move between images
    box = reviews["images"][0]["boxes"][0]
    assert (box["status"], box["label"], box["reviewer"]) == ("corrected", "red fox", "Ada Reviewer")

    # the Camtrap DP download validates and carries the human classification and the deployment
    pkg = tmp_path / "camtrap"
    with zipfile.ZipFile(tmp_path / "camtrap-dp.zip") as zf:
        zf.extractall(pkg)
    assert validate_camtrap_dp(pkg) == []
    obs = list(csv.DictReader((pkg / "observations.csv").open()))
    assert [(o["scientificName"], o["classifiedBy"]) for o in obs if o["classificationMethod"] == "human"] == [
        ("Vulpes vulpes", "Ada Reviewer")
    ]
    dep = next(csv.DictReader((pkg / "deployments.csv").open()))
    assert (dep["deploymentID"], dep["latitude"], dep["longitude"], dep["cameraID"]) == (
        "Test-site-A",
        "36.6",
        "-118.1",
        "CAM-01",
    )
    md = json.loads((tmp_path / "megadetector.json").read_text())
    assert md_validate(md)["errors"] == []
    assert [d["review"]["status"] for i in md["images"] for d in i["detections"] if d.get("review")] == ["corrected"]

    # audio: verdicts for the batch, a timeline of chunks, a click plays that chunk
    assert len(r["verdicts"]) == len(AUDIO) + 2
    assert any("real" in v for v in r["verdicts"]) and any("fake" in v for v in r["verdicts"])
    assert len(r["chunks"]) >= 3
    assert r["played"]["time"] == pytest.approx(r["pickedChunkStart"], abs=0.5) and not r["played"]["paused"]
    # an image's heatmap over the picture (a signed link), a video's sampled frames with their faces drawn
    assert r["heatmapLoaded"] and r["facesListed"] >= 1
    assert r["facesDrawn"] >= 1
    # settings: the webhook secret is shown and rotated
    assert r["secretBefore"].startswith("whsec_") and r["secretAfter"].startswith("whsec_")
    assert r["secretBefore"] != r["secretAfter"]
    # the API docs render offline
    assert "sleuth" in r["docsTitle"] and "sleuth" in r["redocTitle"]


def _job_of(url: str, key: str, report: dict) -> str:
    """The job id of the image the browser reviewed (from its upload group)."""
    items = httpx.get(
        f"{url}/v1/upload-groups/{report['groupId']}/items", headers={"Authorization": f"Bearer {key}"}
    ).json()["items"]
    return next(i["job_id"] for i in items if i["file"] == report["reviewedFile"])
