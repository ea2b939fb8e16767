"""SpeciesNet releases in the catalog: no published digest, so the first download's sha256 is recorded and
checked ever after; ``sleuth models import`` of a downloaded folder/archive; bad input leaves the cache as
it was. The release is the random-weight one of tests/classifier/golden_speciesnet (upstream's structure).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth.engine import catalog as cat
from sleuth.settings import Settings

GOLD = Path(__file__).resolve().parents[1] / "classifier" / "golden_speciesnet"
NAME = "speciesnet-4.0.2a"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    mirror = tmp_path / "mirror"
    (mirror / "speciesnet").mkdir(parents=True)
    for k, v in {
        "SLEUTH_DATA_DIR": tmp_path / "data",
        "SLEUTH_MODEL_CACHE": tmp_path / "cache",
        "SLEUTH_MODEL_MIRROR": mirror,
    }.items():
        monkeypatch.setenv(k, str(v))
    from sleuth.settings import get_settings

    get_settings.cache_clear()
    yield Settings(data_dir=tmp_path / "data", model_cache=tmp_path / "cache", model_mirror=mirror)
    get_settings.cache_clear()


def _vdir(s: Settings) -> Path:
    return cat.cache_dir(NAME, s)


def _cache_files(s: Settings) -> list[str]:
    d = _vdir(s)
    return (
        sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.name != ".lock") if d.is_dir() else []
    )


def test_catalog_names_the_speciesnet_releases_with_no_published_digest() -> None:
    catalog = cat.load_catalog()
    names = [n for n in catalog if n.startswith("speciesnet-")]
    assert {"speciesnet-4.0.1a", "speciesnet-4.0.2a", "speciesnet-4.0.3a", "speciesnet-4.0.3b"} <= set(names)
    e = catalog["speciesnet-4.0.3a"]
    art = e.artefact("archive")
    assert art.recorded and not art.sha256 and not art.md5
    assert art.url == "https://www.kaggle.com/api/v1/models/google/speciesnet/pyTorch/v4.0.3a/1/download"
    assert e.loader and e.convert and not e.default


def test_pull_records_the_first_download_and_checks_it_after(env: Settings) -> None:
    mirrored = Path(env.model_mirror or "") / "speciesnet" / f"{NAME}.tar.gz"
    shutil.copyfile(GOLD / "release.tar.gz", mirrored)
    assert cat.digest_state(NAME, env) == "record at first download"
    paths = cat.ensure(NAME, env)
    assert paths["onnx"].is_file() and paths["info"].is_file()
    sha = cat.sha256_file(mirrored)
    rec = json.loads((_vdir(env) / cat.DIGESTS).read_text())["artefacts"]["archive"]
    assert rec["sha256"] == sha and rec["md5"] is None
    assert cat.digest_state(NAME, env) == f"recorded {sha[:12]}"
    assert cat.status(NAME, env) == "installed" and cat.verify(NAME, env) == []

    from sleuth.models.speciesnet import SpeciesNetRelease

    pack = SpeciesNetRelease()
    pack.load(paths)
    assert pack.model_id == NAME and len(pack.labels) == 30

    # a different file at the source later: refused against the recorded digest, the cache keeps its file
    (_vdir(env) / f"{NAME}.tar.gz").unlink()
    before = _cache_files(env)
    data = mirrored.read_bytes()
    mirrored.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(cat.ArtefactError, match=r"sha256 mismatch: expected .* \(recorded when it was first fetched\)"):
        cat.ensure(NAME, env)
    assert _cache_files(env) == before


def test_a_truncated_download_leaves_the_cache_untouched(env: Settings) -> None:
    mirrored = Path(env.model_mirror or "") / "speciesnet" / f"{NAME}.tar.gz"
    data = (GOLD / "release.tar.gz").read_bytes()
    mirrored.write_bytes(data[: len(data) // 2])
    with pytest.raises(cat.ConversionError, match=r"not a readable SpeciesNet archive"):
        cat.ensure(NAME, env)
    assert _cache_files(env) == []  # neither the file nor a recorded digest stayed
    assert cat.digest_state(NAME, env) == "record at first download"


def _cli(*args: str) -> tuple[int, str]:
    from sleuth.cli.app import app

    r = CliRunner().invoke(app, ["models", *args])
    return r.exit_code, r.output + (r.stderr if r.stderr_bytes is not None else "")


def test_import_a_downloaded_folder_then_list_shows_the_recorded_digest(env: Settings, tmp_path: Path) -> None:
    rel = tmp_path / "downloaded"
    with tarfile.open(GOLD / "release.tar.gz") as tf:
        tf.extractall(rel, filter="data")
    code, out = _cli("import", str(rel))
    assert code == 0, out
    assert f"ok {NAME} 4.0.2a" in out
    code, out = _cli("list")
    row = next(ln for ln in out.splitlines() if ln.startswith(NAME + " "))
    assert "installed" in row and "recorded " in row
    assert "pinned md5" in next(ln for ln in out.splitlines() if ln.startswith("mdv5a.0.0 "))
    # the same folder again: accepted (same bytes); another archive: refused, the cache unchanged
    assert _cli("import", str(rel))[0] == 0
    before = _cache_files(env)
    code, out = _cli("import", str(GOLD / "release.tar.gz"))
    assert code == 1 and "differs from the" in out and "--force" in out
    assert _cache_files(env) == before


def test_import_refuses_bad_folders_naming_the_file(env: Settings, tmp_path: Path) -> None:
    rel = tmp_path / "downloaded"
    with tarfile.open(GOLD / "release.tar.gz") as tf:
        tf.extractall(rel, filter="data")
    labels = next(rel.glob("*.labels.txt"))
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    code, out = _cli("import", str(rel))
    assert code == 1 and "has 30 outputs but" in out and labels.name in out
    assert _cache_files(env) == []
    labels.unlink()
    code, out = _cli("import", str(rel))
    assert code == 2 and f"labels file {labels.name} named in info.json is missing" in out
    with tarfile.open(GOLD / "release.tar.gz") as tf:
        tf.extractall(rel, filter="data")
    info = json.loads((rel / "info.json").read_text())
    info["version"] = "9.9.9"
    (rel / "info.json").write_text(json.dumps(info))
    code, out = _cli("import", str(rel))
    assert code == 2 and "no speciesnet-9.9.9" in out
    assert _cache_files(env) == []
