"""One-time conversion of fetched artefacts into served files, recorded in ``converted.json``."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.engine.catalog.entries import (
    CONVERTED_DIR,
    SIDECAR,
    SIDECAR_FORMAT,
    ArtefactError,
    CatalogEntry,
    ConversionError,
)
from sleuth.engine.catalog.integrity import _write_json_atomic, sha256_file
from sleuth.engine.catalog.loading import import_object

log = logging.getLogger("sleuth.models")


def _converter_fingerprint(spec: str) -> str | None:
    """sha256 of the converter's module source, so editing the converter re-converts.

    A converter module may list helper modules whose code shapes its output in
    ``FINGERPRINT_MODULES`` (e.g. the quantizer); their sources then count too.
    """
    try:
        fn = import_object(spec)
        src = inspect.getsourcefile(fn)
        module = inspect.getmodule(fn)
        extra = [inspect.getsourcefile(importlib.import_module(m)) for m in getattr(module, "FINGERPRINT_MODULES", ())]
    except (ImportError, TypeError, OSError):
        return None
    if not (src and os.path.isfile(src)):
        return None
    if not extra:
        return sha256_file(src)
    h = hashlib.sha256(sha256_file(src).encode())
    for path in extra:
        if not (path and os.path.isfile(path)):
            return None
        h.update(sha256_file(path).encode())
    return h.hexdigest()


def _read_sidecar(vdir: Path) -> dict[str, Any] | None:
    p = vdir / SIDECAR
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def _check_converted(entry: CatalogEntry, vdir: Path, sidecar: Mapping[str, Any]) -> dict[str, Path]:
    """Verify produced files against the sidecar; raise ArtefactError naming a tampered file."""
    files = sidecar.get("files", {})
    for rel, meta in sorted(files.items()):
        p = vdir / CONVERTED_DIR / rel
        if not p.is_file():
            raise ArtefactError(f"{entry.name}: converted file {p} is missing")
        actual = sha256_file(p)
        if actual != meta.get("sha256"):
            raise ArtefactError(
                f"{entry.name}: converted file {p} was modified: expected sha256 {meta.get('sha256')}, "
                f"got {actual} (run `sleuth models pull --force {entry.name}` to rebuild it)"
            )
    return {name: vdir / CONVERTED_DIR / rel for name, rel in sidecar.get("produced", {}).items()}


def _sidecar_current(entry: CatalogEntry, sidecar: Mapping[str, Any] | None) -> bool:
    if sidecar is None:
        return False
    want_sources = {a.name: a.pin for a in entry.artefacts}
    if sidecar.get("sources") != want_sources or sidecar.get("converter") != entry.convert:
        return False
    fp = _converter_fingerprint(entry.convert or "")
    return fp is None or sidecar.get("converter_source_sha256") in (None, fp)


def _run_converter(entry: CatalogEntry, vdir: Path, artefacts: Mapping[str, Path]) -> dict[str, Path]:
    assert entry.convert is not None
    try:
        fn = import_object(entry.convert)
    except ImportError as e:
        raise ConversionError(f"{entry.name}: cannot import converter {entry.convert}: {e}") from e
    work = Path(tempfile.mkdtemp(dir=vdir, prefix=".convert-"))
    try:
        log.info("%s: converting with %s", entry.name, entry.convert)
        out_dir = work / CONVERTED_DIR
        out_dir.mkdir()
        try:
            produced = fn(dict(artefacts), out_dir)
        except Exception as e:
            raise ConversionError(f"{entry.name}: converter {entry.convert} failed: {e!r}") from e
        if not isinstance(produced, Mapping) or not produced:
            raise ConversionError(f"{entry.name}: converter {entry.convert} returned {produced!r}, not a dict")
        rel_produced: dict[str, str] = {}
        for pname, ppath in produced.items():
            if pname in artefacts:
                raise ConversionError(f"{entry.name}: produced name {pname!r} clashes with an artefact")
            p = Path(ppath)
            p = p if p.is_absolute() else out_dir / p
            try:
                rel = p.resolve().relative_to(out_dir.resolve())
            except ValueError:
                raise ConversionError(f"{entry.name}: converter returned {p} outside its output folder") from None
            if not p.is_file():
                raise ConversionError(f"{entry.name}: converter did not create {p}")
            rel_produced[str(pname)] = rel.as_posix()
        files = {
            f.relative_to(out_dir).as_posix(): {"sha256": sha256_file(f), "size": f.stat().st_size}
            for f in sorted(out_dir.rglob("*"))
            if f.is_file()
        }
        final = vdir / CONVERTED_DIR
        with contextlib.suppress(FileNotFoundError):
            (vdir / SIDECAR).unlink()
        if final.exists():
            shutil.rmtree(final)
        os.replace(out_dir, final)
        sidecar = {
            "format": SIDECAR_FORMAT,
            "model": entry.name,
            "version": entry.version,
            "converter": entry.convert,
            "converter_source_sha256": _converter_fingerprint(entry.convert),
            "sources": {a.name: a.pin for a in entry.artefacts},
            "produced": rel_produced,
            "files": files,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_json_atomic(vdir / SIDECAR, sidecar)
        return {name: final / rel for name, rel in rel_produced.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
