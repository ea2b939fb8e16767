"""A converted MegaDetector (the random-weight YOLOv5x6 golden checkpoint) through /v1/batch-detect and `sleuth detect`.

The default profile's detector is switched to the golden entry (a catalog entry served from the
mirror like a real release); its boxes go through the same pipeline as MD-Lite's (fusion, per-box
classification, exports) and must be upstream's boxes after NMS.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from .md_golden import GOLDEN, entry_name, golden_json, match_boxes, mirror_with_golden, write_catalog

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = ROOT.parent / "shared" / "data" / "models"
ARCH = "yolov5x6"  # MDv5a/b and redwood's network; no score map (the API's reference scale)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (the convert extra) needed")


@pytest.fixture(scope="module")
def md_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sleuth.engine import registry
    from sleuth.services import wildlife as svc
    from sleuth.settings import get_settings

    root = tmp_path_factory.mktemp("mde2e")
    cat = write_catalog(root / "catalog", [ARCH])
    mirror = mirror_with_golden(root / "mirror", SHARED_MODELS)
    mp = pytest.MonkeyPatch()
    mp.setenv("SLEUTH_CATALOG_DIR", str(cat))
    mp.setenv("SLEUTH_MODEL_MIRROR", str(mirror))
    mp.setenv("SLEUTH_MODEL_CACHE", str(root / "cache"))
    mp.setenv("SLEUTH_DATA_DIR", str(root / "data"))
    # The detector selection (issue 13's SLEUTH_WILDLIFE_DETECTOR does the same through settings).
    md = dataclasses.replace(
        svc.PROFILES["default"],
        detector=entry_name(ARCH),
        relabeler=None,  # MegaDetector has its own person/vehicle classes
        model_id="mdgold-coral",
        model_version="mdgold+coral-mobilenetv2",
    )
    mp.setitem(svc.PROFILES, "default", md)
    get_settings.cache_clear()
    registry.reset()
    yield root
    registry.reset()
    mp.undo()
    get_settings.cache_clear()


def _api_boxes(result: dict[str, Any], w: int, h: int) -> list[tuple[list[float], float, int]]:
    out = []
    for a in result["annotations"]:
        x, y, bw, bh = a["bbox"]
        cls = {"animal": 0, "human": 1, "vehicle": 2}.get(a["label"], 0)
        out.append(([x * w, y * h, (x + bw) * w, (y + bh) * h], float(a["score"]), cls))
    return out


def test_batch_detect_serves_the_converted_release(md_env: Any) -> None:
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team
    from sleuth.settings import get_settings

    app = create_app(get_settings())
    with TestClient(app) as c:
        db = c.app.state.platform.db
        team = create_team(db, "md-e2e")
        auth = {"Authorization": f"Bearer {create_key(db, team.id).key}"}
        scene = (GOLDEN / "scene.png").read_bytes()
        r = c.post(
            "/v1/batch-detect",
            headers=auth,
            files=[("images", ("scene.png", scene, "image/png"))],
            data={"classify": "false", "threshold": "0.15"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        if SHARED_MODELS.is_dir():  # per-box classification (the Coral pack) on the same boxes
            rc = c.post(
                "/v1/batch-detect",
                headers=auth,
                files=[("images", ("scene.png", scene, "image/png"))],
                data={"classify": "true", "threshold": "0.15"},
            )
            assert rc.status_code == 200, rc.text
            classified = rc.json()["results"][0]["annotations"]
            plain = body["results"][0]["annotations"]
            assert [a["bbox"] for a in classified] == [a["bbox"] for a in plain]
            assert all(set(a["taxonomy"]) >= {"class", "species"} for a in classified)
    res = body["results"][0]
    assert "error" not in res, res
    assert res["info"]["model_id"].startswith("mdgold"), res["info"]
    gold = golden_json(ARCH)
    ours = _api_boxes(res, 600, 400)
    assert ours and all(s >= 0.15 for _, s, _ in ours)
    match_boxes(ours, gold, cut=0.15)


def test_sleuth_detect_cli_writes_the_same_boxes(md_env: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sleuth.cli.app import app

    folder = tmp_path / "cam"
    folder.mkdir()
    (folder / "scene.png").write_bytes((GOLDEN / "scene.png").read_bytes())
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["detect", str(folder), "-o", str(out), "--no-classify", "--threshold", "0.15", "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    files = list(out.rglob("*.json"))
    md = next(json.loads(p.read_text()) for p in files if "images" in json.loads(p.read_text()))
    (img,) = md["images"]
    ours = [
        (
            [
                d["bbox"][0] * 600,
                d["bbox"][1] * 400,
                (d["bbox"][0] + d["bbox"][2]) * 600,
                (d["bbox"][1] + d["bbox"][3]) * 400,
            ],
            float(d["conf"]),
            int(d["category"]) - 1,
        )
        for d in img["detections"]
    ]
    match_boxes(ours, golden_json(ARCH), cut=0.15)
