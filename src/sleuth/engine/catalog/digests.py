"""md5-pinned artefacts: the sha256 recorded at first download (trust on first use) and checked ever after."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.engine.catalog.entries import _SHA_RE, DIGESTS, DIGESTS_FORMAT, Artefact, ArtefactError, CatalogEntry
from sleuth.engine.catalog.integrity import _Fetched, _write_json_atomic, sha256_file
from sleuth.engine.catalog.sources import _fetch
from sleuth.settings import Settings

log = logging.getLogger("sleuth.models")


def _origin(art: Artefact) -> str:
    return f"md5 {art.md5}" if art.md5 else "no digest published"


def _read_digests(vdir: Path) -> dict[str, dict[str, Any]]:
    """``artefact name -> record`` from ``digests.json`` (empty when absent or unreadable)."""
    p = vdir / DIGESTS
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != DIGESTS_FORMAT:
        return {}
    arts = data.get("artefacts")
    return {k: v for k, v in arts.items() if isinstance(v, dict)} if isinstance(arts, dict) else {}


def _recorded(vdir: Path, art: Artefact) -> dict[str, Any] | None:
    """The record for ``art`` if it was made for the same file name and md5, else None."""
    rec = _read_digests(vdir).get(art.name)
    if rec is None or rec.get("md5") != art.md5 or rec.get("filename") != art.filename:
        return None
    sha, size = rec.get("sha256"), rec.get("size")
    if not isinstance(sha, str) or not _SHA_RE.match(sha) or not isinstance(size, int) or size <= 0:
        return None
    if art.size and size != art.size:
        return None
    return rec


def _write_digest(entry: CatalogEntry, vdir: Path, art: Artefact, got: _Fetched) -> None:
    p = vdir / DIGESTS
    data: dict[str, Any] = {"format": DIGESTS_FORMAT, "model": entry.name, "version": entry.version}
    data["artefacts"] = _read_digests(vdir)
    data["artefacts"][art.name] = {
        "filename": art.filename,
        "md5": art.md5,
        "sha256": got.sha256,
        "size": got.size,
        "source": got.source,
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json_atomic(p, data)


def _ensure_md5_artefact(entry: CatalogEntry, art: Artefact, vdir: Path, s: Settings, force: bool) -> Path:
    """Cache an md5-pinned artefact; the sha256 seen on its first fetch pins it afterwards.

    Once recorded, a cached file that no longer matches is an error (``force=True`` fetches
    it again, verified against the md5, and records it anew); a re-fetch after the file was
    deleted must give the recorded sha256 again.
    """
    dest = vdir / art.filename
    rec = _recorded(vdir, art)
    if rec is not None:
        pinned = replace(art, sha256=rec["sha256"], size=rec["size"])
        if dest.is_file():
            if dest.stat().st_size == pinned.size and sha256_file(dest) == pinned.sha256:
                return dest
            if not force:
                raise ArtefactError(
                    f"{entry.name}: cached {dest} was modified: it no longer matches the sha256 "
                    f"{pinned.sha256} recorded when it was first fetched ({_origin(art)}); run "
                    f"`sleuth models pull --force {entry.name}` to fetch it again"
                )
            log.warning("%s: cached %s was modified; fetching it again (--force)", entry.name, dest)
        elif not force:
            _fetch(entry, pinned, dest, s)  # md5 and the recorded sha256 must both match
            return dest
    elif dest.exists():
        log.warning("%s: cached %s has no recorded sha256; fetching it again", entry.name, dest)
    got = _fetch(entry, art, dest, s)
    _write_digest(entry, vdir, art, got)
    log.info("%s: %s (%s): recorded sha256 %s", entry.name, art.filename, _origin(art), got.sha256)
    return dest


def _forget(entry: CatalogEntry, vdir: Path, art: Artefact) -> None:
    """Drop a first download again (file and record): its conversion failed, so nothing vouches for it."""
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        (vdir / art.filename).unlink()
    data = _read_digests(vdir)
    if data.pop(art.name, None) is None:
        return
    if not data:
        (vdir / DIGESTS).unlink()
        return
    doc = {"format": DIGESTS_FORMAT, "model": entry.name, "version": entry.version, "artefacts": data}
    _write_json_atomic(vdir / DIGESTS, doc)
