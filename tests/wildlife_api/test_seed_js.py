"""The seed page's JavaScript (fetch + FormData) runs unchanged with Node against a live server, under both of
Animal Detect's base paths (``/v1/...`` and the older ``/api/v1/...``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import cli_key, live_server

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
pytestmark = [
    pytest.mark.skipif(not CT.is_dir(), reason="../shared/data not present"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


def test_seed_javascript_example_runs_unchanged(tmp_path, model_cache):
    env = {
        **os.environ,
        "SLEUTH_DATA_DIR": str(tmp_path / "data"),
        "SLEUTH_MODEL_MIRROR": str(DATA / "models"),
        "SLEUTH_MODEL_CACHE": str(model_cache),
        "SLEUTH_WORKERS": "0",
    }
    env.pop("SLEUTH_DATABASE_URL", None)
    key = cli_key(env, "js")
    results = {}
    with live_server(env) as url:
        # the current base (https://api.animaldetect.com/v1/...) and the old one (.../api/v1/...): only the
        # part before /v1 changes, as a user switching base URLs would change it
        for base in (url, url + "/api"):
            js_env = {
                **env,
                "SLEUTH_URL": base,
                "ANIMAL_DETECT_API_KEY": key,
                "FIRST_FILE": str(CT / "speciesnet" / "american_black_bear.jpg"),
                "SECOND_FILE": str(CT / "speciesnet" / "blank.jpg"),
            }
            out = subprocess.run(
                ["node", str(Path(__file__).with_name("seed_batch_detect.mjs"))],
                env=js_env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert out.returncode == 0, out.stderr
            results[base] = json.loads(out.stdout.strip().splitlines()[-1])
    for base, result in results.items():
        assert result["status"] == 200, (base, result)
        data = result["data"]
        assert data["info"]["country_processed"] == "USA" and data["info"]["threshold_applied"] == 0.2
        first, second = data["results"]
        assert first["annotations"] and second["annotations"] == []
        assert first["metadata"]["image_width"] == 2048 and second["metadata"]["file_size"] == 409295
    current, old = (r["data"]["results"] for r in results.values())
    assert [r["annotations"] for r in current] == [r["annotations"] for r in old]  # the same answer on both bases
