"""The data folder does not depend on the current folder: the per-user data dir (XDG on Linux) unless
SLEUTH_DATA_DIR says otherwise; an older version's ./data is found, used and named in a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _clean_env(monkeypatch: pytest.MonkeyPatch, xdg: Path) -> None:
    for name in ("SLEUTH_DATA_DIR", "SLEUTH_MODEL_CACHE", "SLEUTH_DATABASE_URL", "SLEUTH_STORAGE_DIR", "SLEUTH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))


def test_default_is_the_per_user_data_dir(tmp_path, monkeypatch):
    from sleuth.settings import Settings

    _clean_env(monkeypatch, tmp_path / "xdg")
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.data_dir == tmp_path / "xdg" / "sleuth"
    assert s.model_cache == s.data_dir / "models" and s.storage_dir == s.data_dir / "storage"
    assert s.database_url == f"sqlite:///{(s.data_dir / 'sleuth.db').as_posix()}"
    assert s.data_dir_origin == "default"
    (notice,) = s.data_dir_notices()
    assert "first run" in notice and str(s.data_dir) in notice and "SLEUTH_DATA_DIR" in notice
    s.data_dir.mkdir(parents=True)
    assert Settings().data_dir_notices() == []  # said once, on the first run


def test_env_overrides_and_model_cache_env_wins(tmp_path, monkeypatch):
    from sleuth.settings import Settings

    _clean_env(monkeypatch, tmp_path / "xdg")
    monkeypatch.setenv("SLEUTH_DATA_DIR", str(tmp_path / "mine"))
    s = Settings()
    assert s.data_dir == tmp_path / "mine" and s.model_cache == tmp_path / "mine" / "models"
    assert s.data_dir_origin == "set"
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(tmp_path / "cache"))
    assert Settings().model_cache == tmp_path / "cache"


def test_legacy_dot_data_is_used_with_a_warning(tmp_path, monkeypatch):
    from sleuth.settings import Settings

    _clean_env(monkeypatch, tmp_path / "xdg")
    old = tmp_path / "project"
    (old / "data").mkdir(parents=True)
    (old / "data" / "sleuth.db").write_bytes(b"")
    monkeypatch.chdir(old)
    s = Settings()
    assert s.data_dir == old / "data" and s.data_dir.is_absolute() and s.data_dir_origin == "legacy"
    assert s.model_cache == old / "data" / "models"
    (warning,) = s.data_dir_notices()
    assert warning.startswith("warning:") and str(old / "data") in warning
    assert str(tmp_path / "xdg" / "sleuth") in warning and "SLEUTH_DATA_DIR" in warning
    # an unrelated ./data (no database, key or storage of ours) is left alone
    other = tmp_path / "ml"
    (other / "data" / "images").mkdir(parents=True)
    monkeypatch.chdir(other)
    assert Settings().data_dir == tmp_path / "xdg" / "sleuth"


def _sleuth(args: list[str], cwd: Path, xdg: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEUTH_")}
    env.update(XDG_DATA_HOME=str(xdg), PYTHONPATH=str(ROOT / "src"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_commands_agree_from_any_folder(tmp_path):
    xdg = tmp_path / "xdg"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    made = _sleuth(["keys", "create", "--team", "acme", "--create-team"], a, xdg)
    assert made.returncode == 0, made.stderr
    assert "first run" in made.stderr and str(xdg / "sleuth") in made.stderr
    key = made.stdout.strip().splitlines()[0]
    listed = _sleuth(["keys", "list"], b, xdg)
    assert listed.returncode == 0, listed.stderr
    assert key[:14] in listed.stdout and "team=acme" in listed.stdout
    assert "first run" not in listed.stderr
    cfg = _sleuth(["config"], b, xdg).stdout
    assert f"{xdg / 'sleuth' / 'models'}" in cfg  # detect and the server read the same model cache
    assert not (a / "data").exists() and not (b / "data").exists()


def test_keys_of_an_older_version_are_found(tmp_path):
    xdg = tmp_path / "xdg"
    old = tmp_path / "old"
    old.mkdir()
    made = _sleuth(["keys", "create", "--team", "acme", "--create-team"], old, xdg, SLEUTH_DATA_DIR="data")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[0]
    listed = _sleuth(["keys", "list"], old, xdg)  # no SLEUTH_DATA_DIR: the new default, but ./data is there
    assert listed.returncode == 0, listed.stderr
    assert key[:14] in listed.stdout
    assert "warning" in listed.stderr and str(old / "data") in listed.stderr
    assert not (xdg / "sleuth").exists()
