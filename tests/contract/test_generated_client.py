"""A Python client generated from /openapi.json with openapi-python-client uploads on each family.

The generator lives outside .venv (its dependencies are its own): ``SLEUTH_OPENAPI_CLIENT_GEN`` names its
executable, else ``.venv-tools/bin/openapi-python-client`` (``make install-dev`` installs it there). The test skips,
saying so, only when neither is there.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deepfake"))
from fuzz import DATA, IMAGE, ROOT, fuzz_server  # noqa: E402
from helpers import wav_bytes  # noqa: E402


def _generator() -> Path | None:
    env = os.environ.get("SLEUTH_OPENAPI_CLIENT_GEN")
    for p in ([Path(env)] if env else []) + [ROOT / ".venv-tools" / "bin" / "openapi-python-client"]:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


GEN = _generator()
pytestmark = [
    pytest.mark.skipif(
        GEN is None,
        reason="openapi-python-client not found: set SLEUTH_OPENAPI_CLIENT_GEN or run `make install-dev` "
        "(installs it into .venv-tools)",
    ),
    pytest.mark.skipif(not IMAGE.is_file() or not (DATA / "models").is_dir(), reason="../shared/data not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
    pytest.mark.db,
]


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9a-zA-Z]+", name) if p)


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def _generate(spec_url: str, out: Path) -> object:
    spec = out / "openapi.json"
    spec.write_bytes(httpx.get(spec_url, timeout=30).content)
    config = out / "gen.yaml"
    config.write_text("package_name_override: sleuth_client\npost_hooks: []\n")
    pkg = out / "sleuth_client"
    assert GEN is not None
    r = subprocess.run(
        [
            str(GEN),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(pkg),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and (pkg / "client.py").is_file(), r.stdout + r.stderr
    _import_unset(pkg)
    sys.path.insert(0, str(out))
    importlib.invalidate_caches()
    return importlib.import_module("sleuth_client")


def _import_unset(pkg: Path) -> None:
    """Work around openapi-python-client 0.29.1: an operation with several body media types (multipart and JSON)
    gets ``body: A | B | Unset = UNSET`` without ``Unset`` imported (a Jinja loop-scope slip in its
    endpoint_macros template), so the module fails to import. Add the import; nothing else is touched."""
    for module in (pkg / "api").rglob("*.py"):
        text = module.read_text()
        if "| Unset" in text and "import UNSET, Unset" not in text:
            module.write_text(
                text.replace("from ...types import Response, UNSET", "from ...types import Response, UNSET, Unset")
            )


def _operation(client_pkg: object, doc: dict, method: str, path: str) -> tuple[object, object]:
    """The generated module of an operation and its multipart body class."""
    op = doc["paths"][path][method]
    module = importlib.import_module(f"sleuth_client.api.{_snake(op['tags'][0])}.{_snake(op['operationId'])}")
    models = importlib.import_module("sleuth_client.models")
    return module, getattr(models, _camel(op["operationId"]) + "FilesBody")


def test_generated_client_uploads_on_each_family(tmp_path, model_cache):
    with fuzz_server(tmp_path, model_cache, os.environ.get("SLEUTH_TEST_DATABASE_URL", "")) as (url, key):
        pkg = _generate(f"{url}/openapi.json", tmp_path)
        doc = httpx.get(f"{url}/openapi.json").json()
        from sleuth_client import AuthenticatedClient
        from sleuth_client.types import File

        client = AuthenticatedClient(base_url=url, token=key, timeout=httpx.Timeout(300))

        # wildlife: POST /v1/batch-detect with one camera-trap image
        batch, body_cls = _operation(pkg, doc, "post", "/v1/batch-detect")
        image = File(payload=io.BytesIO(IMAGE.read_bytes()), file_name="bear.jpg", mime_type="image/jpeg")
        r = batch.sync_detailed(client=client, body=body_cls(images=[image], threshold=0.3))
        assert r.status_code == 200, r.content
        result = r.parsed.results[0]
        assert result.filename == "bear.jpg" and result.annotations
        box = result.annotations[0]
        assert box.label and box.score >= 0.3 and len(box.bbox) == 4  # the bear, as the model labels it
        assert r.parsed.info.threshold_applied == 0.3

        # wildlife error: the family's envelope, parsed
        image = File(payload=io.BytesIO(IMAGE.read_bytes()), file_name="bear.jpg", mime_type="image/jpeg")
        bad = batch.sync_detailed(client=client, body=body_cls(images=[image], threshold=2.0))
        assert bad.status_code == 400 and type(bad.parsed).__name__ == "WildlifeError"
        assert bad.parsed.error.field == "threshold"

        # deepfake: POST /detect with a recording, Prefer: wait
        detect, body_cls = _operation(pkg, doc, "post", "/detect")
        audio = File(payload=io.BytesIO(wav_bytes(2.0)), file_name="voice.wav", mime_type="audio/wav")
        r = detect.sync_detailed(client=client, body=body_cls(file=audio, frame_length=1), prefer="wait")
        assert r.status_code == 200, r.content
        item = r.parsed.item
        assert item.status.value == "completed" and item.media_type.value == "audio"
        assert item.filename == "voice.wav" and len(item.metrics.score) == 2

        # deepfake error: its envelope, with item null
        audio = File(payload=io.BytesIO(wav_bytes(1.0)), file_name="voice.wav", mime_type="audio/wav")
        bad = detect.sync_detailed(client=client, body=body_cls(file=audio, frame_length=9))
        assert bad.status_code == 400 and type(bad.parsed).__name__ == "DeepfakeError"
        assert bad.parsed.error.field == "frame_length" and bad.parsed.item is None
