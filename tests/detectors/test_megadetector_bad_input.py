"""Bad MegaDetector downloads: each a clear error naming the file, and nothing half-made left in the cache."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from .md_golden import GOLDEN, entry_name, md5, write_catalog

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (the convert extra) needed")

ARCH = "yolov5s"


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes, digest: str | None = None) -> Any:
    """A catalog entry for ``golden_md/yolov5s.pt`` whose mirror copy holds ``payload``."""
    from sleuth.settings import Settings

    mirror = tmp_path / "mirror"
    (mirror / "golden_md").mkdir(parents=True)
    (mirror / "golden_md" / f"{ARCH}.pt").write_bytes(payload)
    digest = digest or hashlib.md5(payload, usedforsecurity=False).hexdigest()  # default: the catalog pins payload
    cat = write_catalog(tmp_path / "catalog", [ARCH], {ARCH: digest})
    monkeypatch.setenv("SLEUTH_CATALOG_DIR", str(cat))
    return Settings(data_dir=tmp_path / "data", model_cache=tmp_path / "cache", model_mirror=mirror)


def _cache_files(s: Any) -> list[str]:
    root = Path(s.model_cache) / entry_name(ARCH)
    return sorted(p.name for p in root.rglob("*") if p.is_file() and p.name != ".lock") if root.exists() else []


def test_truncated_download_is_refused_by_the_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.engine.catalog import ArtefactError, ensure

    full = (GOLDEN / f"{ARCH}.pt").read_bytes()
    s = _setup(tmp_path, monkeypatch, full[: len(full) // 2], md5(GOLDEN / f"{ARCH}.pt"))
    with pytest.raises(ArtefactError) as e:
        ensure(entry_name(ARCH), s)
    assert f"{ARCH}.pt" in str(e.value) and "md5 mismatch" in str(e.value)
    assert _cache_files(s) == []


def test_wrong_digest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.engine.catalog import ArtefactError, ensure

    s = _setup(tmp_path, monkeypatch, (GOLDEN / f"{ARCH}.pt").read_bytes(), "0" * 32)
    with pytest.raises(ArtefactError) as e:
        ensure(entry_name(ARCH), s)
    assert f"{ARCH}.pt" in str(e.value) and "expected 00000000000000000000000000000000" in str(e.value)
    assert _cache_files(s) == []


def test_truncated_checkpoint_that_passes_its_digest_fails_conversion_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sleuth.engine.catalog import ConversionError, ensure

    full = (GOLDEN / f"{ARCH}.pt").read_bytes()
    s = _setup(tmp_path, monkeypatch, full[: len(full) // 2])  # the catalog pins this damaged file
    with pytest.raises(ConversionError) as e:
        ensure(entry_name(ARCH), s)
    assert f"{ARCH}.pt" in str(e.value) and "not a readable PyTorch checkpoint" in str(e.value)
    assert _cache_files(s) == []  # the cache as it was before the pull: the download is dropped, nothing converted


class _Runs:
    """Pickles as a call of os.system: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(tmp_path: Path) -> bytes:
    import torch

    p = tmp_path / "evil.pt"
    torch.save({"model": _Runs(tmp_path / "ran"), "epoch": -1}, p, pickle_protocol=2)
    return p.read_bytes()


def test_pickle_naming_an_unexpected_class_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.convert.unpickle import UnexpectedClassError
    from sleuth.engine.catalog import ConversionError, ensure

    payload = _evil_checkpoint(tmp_path)
    s = _setup(tmp_path, monkeypatch, payload, None)
    with pytest.raises(ConversionError) as e:
        ensure(entry_name(ARCH), s)
    msg = str(e.value)
    assert f"{ARCH}.pt" in msg and f"{os.system.__module__}.system" in msg and "refusing" in msg
    assert isinstance(e.value.__cause__, UnexpectedClassError)
    assert not (tmp_path / "ran").exists()  # nothing ran
    assert "converted.json" not in _cache_files(s) and not any("onnx" in f for f in _cache_files(s))


def test_a_plain_pickle_of_an_unknown_module_class_names_it(tmp_path: Path) -> None:
    import torch

    from sleuth.convert.megadetector import read_release
    from sleuth.convert.unpickle import UnexpectedClassError

    p = tmp_path / "other.pt"
    torch.save({"model": torch.nn.GRU(2, 2)}, p)
    with pytest.raises(UnexpectedClassError) as e:
        read_release(p)
    assert "torch.nn.modules.rnn.GRU" in str(e.value) and str(p) in str(e.value)
    with open(p, "rb") as f:  # the file itself is a normal torch checkpoint
        assert f.read(2) == b"PK"
    assert pickle.HIGHEST_PROTOCOL >= 2


def test_pull_of_an_architecture_not_converted_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like mdv1000-cedar (YOLOv9): the download is verified, then `pull` prints the manual export path."""
    from typer.testing import CliRunner

    from sleuth.cli.models import app
    from sleuth.engine.catalog import load_catalog
    from sleuth.settings import get_settings

    cedar = load_catalog(builtin=True, dirs=[])["mdv1000-cedar"]
    mirror = tmp_path / "mirror"
    (mirror / "golden_md").mkdir(parents=True)
    payload = b"a YOLOv9 checkpoint stand-in"
    (mirror / "golden_md" / "cedar.pt").write_bytes(payload)
    (tmp_path / "catalog").mkdir()
    note = cedar.extra["manual_export"].replace('"', '\\"')
    (tmp_path / "catalog" / "c.toml").write_text(
        f'''[[model]]
name = "mdgold-cedar"
version = "1"
task = "animal-detection"
licence = "GPL-3.0"
manual_export = "{note}"
[[model.artefact]]
name = "weights"
filename = "cedar.pt"
md5 = "{hashlib.md5(payload, usedforsecurity=False).hexdigest()}"
max_size = 1000
mirror = "golden_md/cedar.pt"
'''
    )
    monkeypatch.setenv("SLEUTH_CATALOG_DIR", str(tmp_path / "catalog"))
    monkeypatch.setenv("SLEUTH_MODEL_MIRROR", str(mirror))
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(tmp_path / "cache"))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["pull", "mdgold-cedar"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert "ok mdgold-cedar" in r.output and "note mdgold-cedar" in r.output
    assert "does not convert YOLOv9" in r.output and "export.py --include onnx" in r.output


def test_cli_pull_converts_a_release_format_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sleuth.cli.models import app
    from sleuth.settings import get_settings

    s = _setup(tmp_path, monkeypatch, (GOLDEN / f"{ARCH}.pt").read_bytes())
    monkeypatch.setenv("SLEUTH_MODEL_MIRROR", str(s.model_mirror))
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(s.model_cache))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["pull", entry_name(ARCH)])
        listed = CliRunner().invoke(app, ["list"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert f"ok {entry_name(ARCH)}" in r.output and "onnx=" in r.output and "model.onnx" in r.output
    assert any(entry_name(ARCH) in line and "installed" in line for line in listed.output.splitlines())
