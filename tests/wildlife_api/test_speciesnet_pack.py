"""A SpeciesNet model folder as the API's classifier pack: its labels, ids and range data are used."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
pytestmark = [
    pytest.mark.skipif(not (DATA / "models").is_dir(), reason="../shared/data (model mirror) not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
]


def _folder_builder():
    """The tiny SpeciesNet folder the classifier tests build (a real folder layout, real labels)."""
    spec = importlib.util.spec_from_file_location(
        "speciesnet_folder_tests", ROOT / "tests" / "classifier" / "test_speciesnet_folder.py"
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture
def snclient(settings, tmp_path):
    from fastapi.testclient import TestClient

    from sleuth.api.app import create_app
    from sleuth.platform.auth import create_key, create_team
    from sleuth.settings import get_settings

    mod = _folder_builder()
    # a classifier that says "ocelot" (p ~ 0.87) for any crop: the geofence, not the pixels, decides below
    mod.W = np.zeros_like(mod.W)
    mod.B = np.array([0, 0, 3.0, 0], np.float32)
    folder = mod._folder(tmp_path)
    s = settings.model_copy(update={"classifier_pack": str(folder)})
    import os

    os.environ["SLEUTH_CLASSIFIER_PACK"] = str(folder)
    get_settings.cache_clear()
    try:
        app = create_app(s)
        db = app.state.platform.db
        auth = {"Authorization": f"Bearer {create_key(db, create_team(db, 'sn').id).key}"}
        with TestClient(app) as c:
            yield c, auth
    finally:
        os.environ.pop("SLEUTH_CLASSIFIER_PACK", None)
        get_settings.cache_clear()


def test_species_by_country_comes_from_the_pack(snclient):
    c, auth = snclient
    r = c.get("/v1/countries/MEX/species", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [sp["label"] for sp in body["species"]] == ["ocelot"]
    assert body["species"][0]["taxonomy"]["genus"] == "leopardus"
    assert c.get("/v1/countries/CAN/species", headers=auth).json()["species"] == []
    models = {m["model_id"] for m in c.get("/v1/models", headers=auth).json()["models"]}
    assert "mdlite-speciesnet" in models


def test_detect_uses_the_pack_labels_and_geofence(snclient):
    c, auth = snclient
    # an ocelot is allowed in TX and not in NY (the folder's geofence_release.json)
    files = {"image": ("bear.jpg", (DATA / "camera_traps" / "speciesnet" / "american_black_bear.jpg").read_bytes())}
    tx = c.post(
        "/v1/detect", headers=auth, files=files, data={"country": "USA", "latitude": "30.27", "longitude": "-97.74"}
    ).json()
    assert tx["info"]["model_id"] == "mdlite-speciesnet" and tx["info"]["admin1_processed"] == "US-TX"
    assert tx["annotations"][0]["label"] == "ocelot"
    assert tx["annotations"][0]["taxonomy"]["id"] == "22976d14-d424-4f18-a67a-d8e1689cefcc"
    ny = c.post(
        "/v1/detect", headers=auth, files=files, data={"country": "USA", "latitude": "40.71", "longitude": "-74.0"}
    ).json()
    assert ny["annotations"][0]["label"] != "ocelot"  # geofenced out: rolled up
    assert ny["annotations"][0]["taxonomy"]["species"] == ""
    assert json.dumps(ny)  # serialisable
