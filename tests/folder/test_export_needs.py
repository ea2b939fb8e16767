"""``sleuth detect`` checks what each export needs before it processes anything (and says it with the command
line's flags); a checkpoint of a run that processed nothing never blocks the next run. No models needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_cli


@pytest.fixture
def traps(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "traps"
    for name in ("site_a/1.jpg", "site_b/cam1/2.jpg"):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (90, 120, 60)).save(p)
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SLEUTH_DATA_DIR": str(tmp_path / "data"), "SLEUTH_MODEL_CACHE": str(tmp_path / "no-models")}


def test_camtrap_dp_without_coordinates_fails_before_processing(traps, env, tmp_path):
    out = tmp_path / "out"
    r = run_cli(["detect", str(traps), "-f", "md", "-f", "camtrap-dp", "-o", str(out), "--no-progress"], env)
    assert r.exit_code == 1
    assert "--latitude" in r.output and "--longitude" in r.output and "--deployments" in r.output
    assert "--placeholder-coordinates" in r.output and "site_a" in r.output
    assert "a Deployment" not in r.output and "folder mapping" not in r.output  # no Python arguments
    assert "processing" not in r.output and not out.exists()  # nothing processed, nothing written
    assert not (tmp_path / "no-models").exists()  # no model was even looked for

    deps = tmp_path / "deps.csv"
    deps.write_text("folder,deploymentID,latitude,longitude\nsite_a,dep-a,32.7,-117.1\n")
    r = run_cli(["detect", str(traps), "-f", "camtrap-dp", "--deployments", str(deps), "-o", str(out)], env)
    assert r.exit_code == 1 and "missing for site_b" in r.output and "dep-a" not in r.output

    r = run_cli(["detect", str(traps), "-f", "coco", "--category-names", "species", "-o", str(out)], env)
    assert r.exit_code == 1 and "--category-names must be label or detector" in r.output


def test_export_names_flags_too(tmp_path, env):
    import json

    md = {
        "info": {"format_version": "1.4", "detector": "x"},
        "detection_categories": {"1": "animal"},
        "images": [{"file": "cam/1.jpg", "detections": [], "datetime": "2021:05:01 10:00:00"}],
    }
    (tmp_path / "r.json").write_text(json.dumps(md))
    r = run_cli(["export", str(tmp_path / "r.json"), "-f", "camtrap-dp", "-o", str(tmp_path / "x")], env)
    assert r.exit_code == 1 and "--latitude" in r.output and "missing for cam" in r.output
    assert not (tmp_path / "x").exists()
    r = run_cli(
        [
            "export",
            str(tmp_path / "r.json"),
            "-f",
            "camtrap-dp",
            "-o",
            str(tmp_path / "x"),
            "--latitude",
            "1",
            "--longitude",
            "2",
        ],
        env,
    )
    assert r.exit_code == 0, r.output


def test_a_run_that_processed_nothing_never_blocks_the_next(traps, env, tmp_path):
    out = tmp_path / "out"
    ck = out / ".sleuth-checkpoint.jsonl"
    # a server that is not there: the run stops before any file is done and leaves no checkpoint
    args = ["detect", str(traps), "-o", str(out), "--no-progress", "--server", "http://127.0.0.1:9", "--api-key", "k"]
    r = run_cli(args, env)
    assert r.exit_code == 1 and "--resume" not in r.output
    assert not ck.exists()
    # --max-images 0 processes nothing and keeps a header-only checkpoint: the next run is not blocked
    r = run_cli(["detect", str(traps), "-o", str(out), "--no-progress", "--max-images", "0"], env)
    assert r.exit_code == 0, r.output
    assert ck.is_file() and len(ck.read_text().splitlines()) == 1
    r = run_cli(["detect", str(traps), "-o", str(out), "--no-progress", "--max-images", "0"], env)
    assert r.exit_code == 0, r.output
    assert "checkpoint of an earlier run exists" not in r.output
