"""Registry (load once per process, one batcher per model) and the `sleuth models` CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from sleuth.cli.models import app
from sleuth.engine import registry
from sleuth.engine.base import ModelError

from .engine_testlib import CONVERT, EngineEnv, LinearModel, expected, make_weights, sha256, toml_entry

W = make_weights(11)


def weights_art(data: bytes = W, mirror: str = "lin/w.bin") -> dict[str, object]:
    return {
        "name": "weights",
        "filename": "w.bin",
        "sha256": sha256(data),
        "size": len(data),
        "mirror": mirror,
    }


@pytest.fixture
def lin(eng: EngineEnv) -> Iterator[EngineEnv]:
    eng.put_mirror("lin/w.bin", W)
    eng.write_catalog(
        toml_entry("lin", [weights_art()], convert=CONVERT, default=True)
        + toml_entry("lin-noconv", [weights_art()])  # loader needs the 'onnx' artefact: load fails
        + toml_entry("lin-badloader", [weights_art()], loader="sleuth.engine.base:describe")
        + toml_entry("lin-other", [weights_art(make_weights(12), "other/w.bin")])
    )
    registry.reset()
    yield eng
    registry.reset()


def test_get_model_loads_once_across_threads(lin: EngineEnv) -> None:
    got: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            got.append(registry.get_model("lin"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(got) == 6 and all(m is got[0] for m in got)
    model = got[0]
    assert isinstance(model, LinearModel)
    assert model.load_calls == 1
    assert model.name == "lin"
    assert model.catalog_entry.name == "lin"  # type: ignore[attr-defined]
    assert registry.loaded_models() == ["lin"]


def test_get_batcher_serves_the_model(lin: EngineEnv) -> None:
    b = registry.get_batcher("lin")
    assert registry.get_batcher("lin") is b
    assert b.model is registry.get_model("lin")
    x = [0.5, -1.0, 2.0, 0.25]
    out = b.submit({"tag": "t", "x": x}).result(10)
    np.testing.assert_allclose(out["y"], expected(W, x), rtol=1e-5, atol=1e-5)
    registry.close_all()
    assert b.closed
    assert registry.get_batcher("lin") is not b  # a closed batcher is replaced


def test_registry_errors_are_clear(lin: EngineEnv) -> None:
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        registry.get_model("nope")
    with pytest.raises(ModelError, match="lin-noconv.*loading failed"):
        registry.get_model("lin-noconv")
    with pytest.raises(ModelError, match="not a sleuth.engine.base.Model subclass"):
        registry.get_model("lin-badloader")
    assert registry.loaded_models() == []


# ------------------------------------------------------------------------------ CLI

runner = CliRunner()


def test_cli_list_pull_verify(lin: EngineEnv) -> None:
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "TASK", "LICENCE", "DEFAULT", "STATUS", "SIZE", "DIGEST"]
    row = next(line for line in lines if line.startswith("lin "))
    assert row.split() == ["lin", "1.0", "test", "MIT", "yes", "available", "60", "B", "pinned"]

    r = runner.invoke(app, ["pull"])  # = the default set
    assert r.exit_code == 0, r.output
    assert "ok lin 1.0" in r.output and "onnx=" in r.output
    assert "lin-other" not in r.output

    r = runner.invoke(app, ["list", "--json"])
    status = {rec["name"]: rec["status"] for rec in json.loads(r.output)}
    assert status == {"lin": "installed", "lin-badloader": "available", "lin-noconv": "available",
                      "lin-other": "available"}  # fmt: skip

    r = runner.invoke(app, ["verify"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["verify", "lin-other"])
    assert r.exit_code == 1 and "not installed" in r.output

    onnx_path = lin.cache / "lin" / "1.0" / "converted" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    r = runner.invoke(app, ["verify"])
    assert r.exit_code == 1 and "model.onnx" in r.output and "was modified" in r.output
    r = runner.invoke(app, ["pull", "lin", "--force"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["verify", "lin"]).exit_code == 0


def test_cli_pull_errors(lin: EngineEnv) -> None:
    r = runner.invoke(app, ["pull", "nope"])
    assert r.exit_code == 2 and "unknown model 'nope'" in r.output
    r = runner.invoke(app, ["pull", "lin-other"])  # its mirror file was never put there
    assert r.exit_code == 1 and "could not fetch 1 model file" in r.output and "lin-other" in r.output


def test_cli_bad_catalog(lin: EngineEnv) -> None:
    lin.write_catalog("[[model]]\nname = 'x'\n", "broken.toml")
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 2 and "broken.toml" in r.output
    r = runner.invoke(app, ["verify"])
    assert r.exit_code == 1 and "broken.toml" in r.output
