"""Public cache operations: ``ensure``, ``status``, ``verify``, ``pull``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sleuth.engine.catalog.conversion import _check_converted, _read_sidecar, _run_converter, _sidecar_current
from sleuth.engine.catalog.digests import _ensure_md5_artefact, _forget, _origin, _recorded
from sleuth.engine.catalog.entries import (
    CONVERTED_DIR,
    DIGESTS,
    SIDECAR,
    ArtefactError,
    CatalogEntry,
    CatalogError,
    ModelNotFoundError,
)
from sleuth.engine.catalog.integrity import _file_lock, sha256_file
from sleuth.engine.catalog.loading import get_entry, import_object, load_catalog, resolve_names
from sleuth.engine.catalog.sources import _fetch, _settings, cache_dir
from sleuth.settings import Settings

log = logging.getLogger("sleuth.models")


def _entry_for(name: str | CatalogEntry, settings: Settings | None) -> CatalogEntry:
    if isinstance(name, CatalogEntry):
        return name
    return get_entry(name, load_catalog(settings=settings))


def ensure(
    name: str | CatalogEntry,
    settings: Settings | None = None,
    *,
    force: bool = False,
    convert: bool = True,
) -> dict[str, Path]:
    """Make a model's artefacts (and converted files) present and verified in the cache.

    Returns ``artefact name -> path`` plus the converter's produced names (e.g. ``onnx``);
    ``convert=False`` stops after the fetched artefacts (build scripts that feed a converter).
    Cached artefacts are re-hashed and reused when they match; otherwise fetched again.
    Converted files are checked against ``converted.json``: a changed source or converter,
    or a missing produced file, re-converts; a modified produced file raises
    :class:`ArtefactError` (``force=True`` rebuilds it instead).
    """
    s = _settings(settings)
    entry = _entry_for(name, s)
    vdir = cache_dir(entry, s)
    vdir.mkdir(parents=True, exist_ok=True)
    with _file_lock(vdir / ".lock"):
        paths: dict[str, Path] = {}
        fresh = []  # digests recorded by this call: undone if the conversion then fails
        for art in entry.artefacts:
            if art.tofu:
                had = _recorded(vdir, art)
                paths[art.name] = _ensure_md5_artefact(entry, art, vdir, s, force)
                if had is None:
                    fresh.append(art)
                continue
            dest = vdir / art.filename
            if dest.is_file() and dest.stat().st_size == art.size and sha256_file(dest) == art.sha256:
                paths[art.name] = dest
                continue
            if dest.exists():
                log.warning("%s: cached %s does not verify; fetching it again", entry.name, dest)
            _fetch(entry, art, dest, s)
            paths[art.name] = dest
        if entry.convert and convert:
            sidecar = _read_sidecar(vdir)
            complete = sidecar is not None and all(
                (vdir / CONVERTED_DIR / rel).is_file() for rel in sidecar.get("files", {})
            )
            if not force and complete and _sidecar_current(entry, sidecar):
                assert sidecar is not None
                produced = _check_converted(entry, vdir, sidecar)  # raises if a file was modified
            else:
                try:
                    produced = _run_converter(entry, vdir, paths)
                except ArtefactError:
                    for art in fresh:
                        _forget(entry, vdir, art)
                    raise
            paths.update(produced)
        return paths


def status(name: str | CatalogEntry, settings: Settings | None = None) -> Literal["installed", "available"]:
    """Cheap check (sizes and sidecar, no hashing): ``installed`` or ``available``.

    ``verify`` does the full sha256 check.
    """
    s = _settings(settings)
    entry = _entry_for(name, s)
    vdir = cache_dir(entry, s)
    for art in entry.artefacts:
        p = vdir / art.filename
        size = art.size
        if art.tofu:
            rec = _recorded(vdir, art)
            if rec is None:
                return "available"
            size = rec["size"]
        if not p.is_file() or p.stat().st_size != size:
            return "available"
    if entry.convert:
        sidecar = _read_sidecar(vdir)
        if sidecar is None or sidecar.get("sources") != {a.name: a.pin for a in entry.artefacts}:
            return "available"
        for rel, meta in sidecar.get("files", {}).items():
            p = vdir / CONVERTED_DIR / rel
            if not p.is_file() or p.stat().st_size != meta.get("size"):
                return "available"
    return "installed"


def _verify_entry(entry: CatalogEntry, s: Settings, named: bool) -> list[str]:
    problems: list[str] = []
    vdir = cache_dir(entry, s)
    started = vdir.is_dir() and any(p.name != ".lock" for p in vdir.iterdir())
    if not started:
        return [f"{entry.name}: not installed (run `sleuth models pull {entry.name}`)"] if named else []
    for art in entry.artefacts:
        p = vdir / art.filename
        if not p.is_file():
            problems.append(f"{entry.name}: {art.filename} missing from {vdir}")
            continue
        if art.tofu:
            rec = _recorded(vdir, art)
            if rec is None:
                problems.append(
                    f"{entry.name}: {p}: no sha256 recorded for this md5-pinned file ({DIGESTS} missing "
                    f"or stale); run `sleuth models pull --force {entry.name}`"
                )
                continue
            actual = sha256_file(p)
            if actual != rec["sha256"]:
                problems.append(
                    f"{entry.name}: {p}: sha256 mismatch: expected {rec['sha256']} (recorded when it was "
                    f"first fetched, {_origin(art)}), got {actual}"
                )
            continue
        actual = sha256_file(p)
        if actual != art.sha256:
            problems.append(f"{entry.name}: {p}: sha256 mismatch: expected {art.sha256}, got {actual}")
    if entry.convert:
        sidecar = _read_sidecar(vdir)
        if sidecar is None:
            problems.append(f"{entry.name}: not converted yet ({SIDECAR} missing)")
        else:
            if not _sidecar_current(entry, sidecar):
                problems.append(f"{entry.name}: converted files are stale (sources or converter changed)")
            try:
                _check_converted(entry, vdir, sidecar)
            except ArtefactError as e:
                problems.append(str(e))
    for what, spec in (("loader", entry.loader), ("converter", entry.convert)):
        if spec:
            try:
                import_object(spec)
            except Exception as e:  # any import-time failure is a problem to report
                problems.append(f"{entry.name}: {what} {spec} cannot be imported: {e}")
    return problems


def verify(name: str | None = None, settings: Settings | None = None) -> list[str]:
    """Re-hash cached files; returns human-readable problems (empty list = all good).

    With a name, a model that is not installed is a problem. Without one, every model
    with a cache folder is checked (models never pulled are skipped).
    """
    s = _settings(settings)
    try:
        catalog = load_catalog(settings=s)
    except CatalogError as e:
        return [str(e)]
    if name is not None:
        try:
            return _verify_entry(get_entry(name, catalog), s, named=True)
        except ModelNotFoundError as e:
            return [str(e)]
    problems: list[str] = []
    for entry in catalog.values():
        problems.extend(_verify_entry(entry, s, named=False))
    return problems


def pull(
    names: str | Sequence[str] = "default",
    settings: Settings | None = None,
    *,
    force: bool = False,
) -> dict[str, dict[str, Path]]:
    """``ensure`` several models; ``"default"`` = entries with ``default = true``, ``"all"`` = all."""
    s = _settings(settings)
    catalog = load_catalog(settings=s)
    wanted = resolve_names([names] if isinstance(names, str) else names, catalog)
    return {n: ensure(catalog[n], s, force=force) for n in wanted}


def digest_state(name: str | CatalogEntry, settings: Settings | None = None) -> str:
    """How the entry's files are verified: ``pinned`` (published sha256), ``pinned md5`` (the publisher's md5,
    sha256 recorded at first download), ``recorded <sha256 prefix>`` (no digest published: the first
    download's), or ``record at first download`` (none published, nothing downloaded yet)."""
    s = _settings(settings)
    entry = _entry_for(name, s)
    vdir = cache_dir(entry, s)
    states = []
    for art in entry.artefacts:
        if not art.recorded:
            states.append("pinned md5" if art.md5 else "pinned")
            continue
        rec = _recorded(vdir, art)
        states.append(f"recorded {rec['sha256'][:12]}" if rec else "record at first download")
    return ", ".join(dict.fromkeys(states))
