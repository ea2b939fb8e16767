"""The field's own validators, shared by the export and folder-CLI tests.

MegaDetector format: ``validate_batch_results`` from the ``megadetector`` package. Camtrap DP:
frictionless, against the Camtrap DP profile with its two remote $refs resolved offline (the
generic Data Package profile is checked by frictionless' own Package validation, GeoJSON by the
copy bundled with frictionless), then every table against its Camtrap DP table schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sleuth.exports.camtrap_dp import SCHEMA_DIR


def md_validate(d: dict[str, Any]) -> dict[str, Any]:
    try:
        from megadetector.postprocessing.validate_batch_results import validate_batch_results
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(
            f"megadetector validator not importable: {exc!r} (pip install --no-deps megadetector==10.0.28 jsonpickle)"
        )
    return validate_batch_results(d)["validation_results"]


def offline_camtrap_profile() -> dict[str, Any]:
    from frictionless import settings

    profile = json.loads((SCHEMA_DIR / "camtrap-dp-profile.json").read_text())

    def patch(o: Any) -> Any:
        if isinstance(o, dict):
            if o.get("$ref") == "https://specs.frictionlessdata.io/schemas/data-package.json":
                return {}
            if o.get("$ref") == "http://json.schemastore.org/geojson.json":
                o = {k: v for k, v in o.items() if k != "$ref"}
                o["allOf"] = [settings.GEOJSON_PROFILE]
                return o
            return {k: patch(v) for k, v in o.items()}
        if isinstance(o, list):
            return [patch(v) for v in o]
        return o

    return patch(profile)


def validate_camtrap_dp(package_dir: Path) -> list[str]:
    """Errors of a Camtrap DP package: descriptor vs the Camtrap DP profile and the Data Package
    profile, then every table vs its Camtrap DP table schema (types, constraints, keys)."""
    pytest.importorskip("frictionless", reason="frictionless not installed (pip install frictionless)")
    from frictionless import Package
    from frictionless.metadata import Metadata

    desc = json.loads((package_dir / "datapackage.json").read_text())
    errors = [f"profile: {e.note}" for e in Metadata.metadata_validate(desc, profile=offline_camtrap_profile())]
    local = copy.deepcopy(desc)
    local.pop("profile")
    errors += [f"data package: {e.note}" for e in Package.metadata_validate(local)]
    for res in local["resources"]:
        res["schema"] = json.loads((SCHEMA_DIR / f"{res['name']}-table-schema.json").read_text())
    report = Package(local, basepath=str(package_dir)).validate()
    errors += [f"table: {t}: {n}" for t, n in report.flatten(["type", "note"])]
    return errors
