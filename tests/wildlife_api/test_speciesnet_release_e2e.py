"""SpeciesNet from the catalog, selected by settings: /v1/batch-detect, /v1/models, countries, `sleuth detect`.

The release is tests/classifier/golden_speciesnet's random-weight one (upstream's file structure), put in
the cache with `sleuth models import`; ``SLEUTH_CLASSIFIER_PACK=speciesnet-4.0.2a`` selects it. The
detector is MD-Lite from the shared mirror (skipped without ../shared/data).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
GOLD = ROOT / "tests" / "classifier" / "golden_speciesnet"
IMG = DATA / "camera_traps" / "speciesnet" / "american_black_bear.jpg"
NAME = "speciesnet-4.0.2a"
pytestmark = [
    pytest.mark.skipif(not (DATA / "models").is_dir(), reason="../shared/data (model mirror) not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed"),
]


@pytest.fixture
def sn(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from sleuth.cli.app import app
    from sleuth.engine import catalog as cat
    from sleuth.services import wildlife as svc
    from sleuth.settings import get_settings

    r = CliRunner().invoke(app, ["models", "import", str(GOLD / "release.tar.gz"), "--force"])
    assert r.exit_code == 0, r.output
    assert cat.status(NAME) == "installed"
    monkeypatch.setenv("SLEUTH_CLASSIFIER_PACK", NAME)
    get_settings.cache_clear()
    svc._packs.pop(NAME, None)
    yield settings.model_copy(update={"classifier_pack": NAME})
    svc._packs.pop(NAME, None)
    get_settings.cache_clear()


def _client(s: Any) -> Any:
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team

    app = create_app(s)
    db = app.state.platform.db
    return TestClient(app), {"Authorization": f"Bearer {create_key(db, create_team(db, 'sn').id).key}"}


def test_batch_detect_runs_the_selected_speciesnet(sn: Any) -> None:
    labels = {ln.split(";")[-1] for ln in (GOLD / "golden.json").read_text().split('"') if ln.count(";") == 6}
    c, auth = _client(sn)
    with c:
        files = [("images", ("bear.jpg", IMG.read_bytes()))]
        r = c.post("/v1/batch-detect", headers=auth, files=files, data={"top_candidate": "3"})
        assert r.status_code == 200, r.text
        item = r.json()["results"][0] if "results" in r.json() else r.json()["items"][0]
        assert item["info"]["model_id"] == "mdlite-speciesnet"
        assert item["info"]["model_version"].endswith("+speciesnet-4.0.2a")
        anns = item["annotations"]
        assert anns, item
        for a in anns:  # labels come from the release (random weights: which one does not matter)
            assert a["label"] in labels or a["label"] in ("animal", "human", "vehicle") or " " in a["label"]
            assert len(a.get("top_candidates") or []) <= 3
        models = c.get("/v1/models", headers=auth).json()
        assert {"mdlite-speciesnet", "mdlite-filter"} <= {m["model_id"] for m in models["models"]}
        assert NAME in {m["name"] for m in models["installed"] if m["kind"] == "classifier"}
        body = c.get("/v1/countries/CHN/species", headers=auth).json()
        assert [sp["label"] for sp in body["species"]] == ["giant panda"]  # from the release's geofence


def test_a_profile_naming_a_model_not_installed_fails_at_start(settings: Any) -> None:
    from sleuth.api.app import create_app
    from sleuth.services.model_selection import SelectionError

    with pytest.raises(
        SelectionError,
        match=r"SLEUTH_WILDLIFE_DETECTOR=mdv5a\.0\.0 is not installed; run `sleuth models pull mdv5a\.0\.0`",
    ):
        create_app(settings.model_copy(update={"wildlife_detector": "mdv5a.0.0"}))
    with pytest.raises(SelectionError, match=r"SLEUTH_CLASSIFIER_PACK=speciesnet-4\.0\.3a is not installed"):
        create_app(settings.model_copy(update={"classifier_pack": "speciesnet-4.0.3a"}))


def test_ids_name_what_runs() -> None:
    from sleuth.services.model_selection import model_id

    assert model_id("mdv1000-redwood", NAME) == "mdv1000-speciesnet"
    assert model_id("mdv5a.0.0", NAME) == "mdv5a-speciesnet"
    assert model_id("mdlite", "coral") == "mdlite-coral"
    assert model_id("mdv1000-redwood", None) == "mdv1000-redwood"
    assert model_id("mdv1000-spruce", "coral") == "mdv1000-spruce-coral"


def test_sleuth_detect_with_classifier_option(sn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.cli.app import app

    # the options become this process's settings (a CLI run is one process): restored after the test
    monkeypatch.setenv("SLEUTH_WILDLIFE_DETECTOR", "")
    monkeypatch.delenv("SLEUTH_CLASSIFIER_PACK")

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(IMG, src / "bear.jpg")
    out = tmp_path / "out.json"
    r = CliRunner().invoke(app, ["detect", str(src), "-o", str(out), "--classifier", NAME, "--no-progress"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert "speciesnet-4.0.2a" in json.dumps(doc["info"])
    r = CliRunner().invoke(app, ["detect", str(src), "-o", str(tmp_path / "o2.json"), "--detector", "mdv5b.0.0"])
    assert r.exit_code == 2 and "--detector mdv5b.0.0 is not installed; run `sleuth models pull mdv5b.0.0`" in r.output
