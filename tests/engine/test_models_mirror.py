"""A failed fetch says, in one message, each missing file, its digest and its mirror path; ``sleuth models
mirror DIR`` writes a mirror folder from a working cache, in the layout SLEUTH_MODEL_MIRROR reads (round trip:
mirror from a cache, then pull from that mirror into an empty cache with the network out of reach)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth.settings import Settings, get_settings

from .engine_testlib import EngineEnv, toml_entry

A = b"alpha weights " * 50
B = b"beta labels\n" * 7
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: the network is "down" for these sources


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, UNREACHABLE)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("NO_PROXY", "")


def _catalog(eng: EngineEnv) -> None:
    arts_a = [
        {
            "name": "weights",
            "filename": "a.bin",
            "sha256": _sha(A),
            "size": len(A),
            "source": {"url": f"{UNREACHABLE}/a"},
        }
    ]
    arts_b = [
        {
            "name": "labels",
            "filename": "b.txt",
            "sha256": _sha(B),
            "size": len(B),
            "source": {"url": f"{UNREACHABLE}/b"},
            "mirror": "shared/b-labels.txt",
        }
    ]
    (eng.catalog_dir / "t.toml").write_text(
        toml_entry("alpha", arts_a, default=True) + toml_entry("beta", arts_b, default=True)
    )


def _invoke(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from sleuth.cli import app

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return CliRunner().invoke(app, args)


def test_one_message_then_mirror_round_trip(eng: EngineEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _catalog(eng)
    _no_network(monkeypatch)
    monkeypatch.delenv("SLEUTH_MODEL_MIRROR")
    r = _invoke(["models", "pull"], {}, monkeypatch)
    assert r.exit_code == 1
    err = r.stderr
    assert err.count("could not fetch 2 model files") == 1 and "FAILED" not in err
    assert "$SLEUTH_MODEL_MIRROR/alpha/a.bin" in err and f"sha256 {_sha(A)}" in err
    assert "$SLEUTH_MODEL_MIRROR/shared/b-labels.txt" in err and f"sha256 {_sha(B)}" in err
    assert "sleuth models mirror DIR" in err

    # with a mirror set but empty, the paths are absolute under it
    r = _invoke(["models", "pull"], {"SLEUTH_MODEL_MIRROR": str(eng.mirror)}, monkeypatch)
    assert r.exit_code == 1 and f"{eng.mirror}/alpha/a.bin" in r.stderr
    # put the files where the message says: the pull works
    (eng.mirror / "alpha").mkdir()
    (eng.mirror / "alpha" / "a.bin").write_bytes(A)
    (eng.mirror / "shared").mkdir()
    (eng.mirror / "shared" / "b-labels.txt").write_bytes(B)
    r = _invoke(["models", "pull"], {}, monkeypatch)
    assert r.exit_code == 0, r.output

    # mirror written from that cache, then pulled into an empty cache from it alone
    out = tmp_path / "new-mirror"
    r = _invoke(["models", "mirror", str(out)], {}, monkeypatch)
    assert r.exit_code == 0, r.output
    assert (out / "alpha" / "a.bin").read_bytes() == A and (out / "shared" / "b-labels.txt").read_bytes() == B
    empty = tmp_path / "empty-cache"
    env = {"SLEUTH_MODEL_CACHE": str(empty), "SLEUTH_MODEL_MIRROR": str(out)}
    r = _invoke(["models", "pull"], env, monkeypatch)
    assert r.exit_code == 0, r.output
    assert _invoke(["models", "verify"], env, monkeypatch).exit_code == 0
    assert (empty / "alpha" / "1.0" / "a.bin").read_bytes() == A

    # a mirror of a cache that lacks a file says which one, and still writes the rest
    (empty / "beta" / "1.0" / "b.txt").unlink()
    r = _invoke(["models", "mirror", str(tmp_path / "partial"), "default"], env, monkeypatch)
    assert r.exit_code == 1 and "shared/b-labels.txt" in r.stderr
    assert (tmp_path / "partial" / "alpha" / "a.bin").is_file()


def test_real_catalog_round_trip(model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The packaged default models: a mirror written from a working cache serves a pull into an empty cache
    with no network (artefacts only; conversion is covered by the catalog tests)."""
    from sleuth.engine import catalog as cat
    from sleuth.engine.catalog.mirror import missing_files, write_mirror

    for var in ("SLEUTH_CATALOG_DIR", "SLEUTH_CATALOG_BUILTIN"):
        monkeypatch.delenv(var, raising=False)
    working = Settings(data_dir=tmp_path / "d", model_cache=model_cache)
    defaults = [e for e in cat.load_catalog(settings=working).values() if e.default]
    if missing_files(defaults, working):
        pytest.skip("the model cache does not hold every default model (run `sleuth models pull default`)")
    written, lacking = write_mirror(tmp_path / "mirror", defaults, working)
    assert lacking == [] and written
    _no_network(monkeypatch)
    fresh = Settings(data_dir=tmp_path / "d", model_cache=tmp_path / "empty", model_mirror=tmp_path / "mirror")
    for e in defaults:
        cat.ensure(e, fresh, convert=False)
    assert missing_files(defaults, fresh) == []
