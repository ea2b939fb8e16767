"""A small camera-trap folder (copied from the shared data, nested, with the 0-byte files and a generated
video) and helpers to run ``sleuth detect`` on it in-process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"

# (source under camera_traps, destination in the test folder)
PICK = [
    ("animl_southwest/2021-05-28_SYFR0041_deer.JPG", "site_a/2021-05-28_SYFR0041_deer.JPG"),
    ("animl_southwest/2021-06-30_SYFR0218_cougar.JPG", "site_a/2021-06-30_SYFR0218_cougar.JPG"),
    ("animl_southwest/2021-08-08_RCNX0063_fox.JPG", "site_a/2021-08-08_RCNX0063_fox.JPG"),
    ("animl_southwest/error_img.JPG", "site_a/error_img.JPG"),  # 0 bytes
    ("animl_southwest/error_vid.mp4", "site_a/error_vid.mp4"),  # 0 bytes
    ("speciesnet/american_black_bear.jpg", "site_b/cam1/american_black_bear.jpg"),
    ("speciesnet/blank.jpg", "site_b/cam1/blank.jpg"),
    ("speciesnet/domestic_dog.jpg", "site_b/cam2/deeper/domestic_dog.jpg"),
]
VIDEO = "site_b/cam2/clip.mp4"
DEPLOYMENTS_CSV = """folder,deploymentID,latitude,longitude,deploymentStart,deploymentEnd,locationName
site_a,dep-a,32.7,-117.1,,,
site_b,dep-b,41.46,-72.1,,,site b
"""


def make_video(path: Path, source: Path, n: int = 25, fps: int = 10) -> None:
    """A short MPEG-4 clip panning over a real camera-trap image (frames 0, 10, 20 sampled at 1 fps)."""
    import av
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(source).convert("RGB").resize((640, 480)))
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(img, i * 4, axis=1)), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="session")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CT.is_dir():
        pytest.skip("../shared/data/camera_traps not present")
    root = tmp_path_factory.mktemp("ct") / "traps"
    for src, dst in PICK:
        d = root / dst
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CT / src, d)
    (root / "site_a" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    shutil.copyfile(CT / PICK[0][0], root / ".hidden" / "skipped.JPG")
    make_video(root / VIDEO, CT / "speciesnet" / "american_black_bear.jpg")
    return root


@pytest.fixture(scope="session")
def detect_env(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for in-process and subprocess runs (models from the shared mirror)."""
    if not (DATA / "models").is_dir():
        pytest.skip("../shared/data/models not present")
    return {
        "SLEUTH_MODEL_MIRROR": str(DATA / "models"),
        "SLEUTH_MODEL_CACHE": str(model_cache),
        "SLEUTH_DATA_DIR": str(tmp_path_factory.mktemp("sleuth-data")),
    }


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    from sleuth.settings import get_settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def run_cli(args: list[str], env: dict[str, str]) -> Any:
    """``sleuth <args>`` in-process with ``env`` set for the call (models stay loaded between runs)."""
    from typer.testing import CliRunner

    from sleuth.cli import app

    with _environ(env):
        return CliRunner().invoke(app, args, catch_exceptions=False)


def md_images(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["images"]


@pytest.fixture(scope="session")
def clean_run(ct_folder: Path, detect_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run with every format; returns the output folder."""
    out = tmp_path_factory.mktemp("clean") / "out"
    deps = out.parent / "deployments.csv"
    deps.write_text(DEPLOYMENTS_CSV)
    r = run_cli(
        [
            "detect",
            str(ct_folder),
            "-o",
            str(out),
            "-f",
            "md,csv",
            "-f",
            "coco",
            "-f",
            "camtrap-dp",
            "--deployments",
            str(deps),
            "--timezone",
            "-07:00",
            "--no-progress",
        ],
        detect_env,
    )
    assert r.exit_code == 0, r.output
    return out
