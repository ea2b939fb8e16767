"""``sleuth models import``: a file the user downloaded becomes a catalog artefact, then is converted.

Only for artefacts whose publisher gives no digest (``digest = "recorded"``): the imported file's sha256 is
recorded as if it had been the first download, and checked ever after. A file that differs from a digest
already recorded is refused (``force`` replaces it). If the conversion then fails, the import is undone,
so the cache holds nothing it did not hold before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sleuth.engine.catalog.digests import _forget, _recorded, _write_digest
from sleuth.engine.catalog.entries import ArtefactError, CatalogEntry
from sleuth.engine.catalog.integrity import _copy_stream, _file_lock, _install_verified, sha256_file
from sleuth.engine.catalog.operations import ensure
from sleuth.engine.catalog.sources import _settings, cache_dir
from sleuth.settings import Settings

log = logging.getLogger("sleuth.models")


def import_artefact(
    entry: CatalogEntry,
    artefact: str,
    file: Path,
    *,
    what: str,
    settings: Settings | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Put ``file`` into the cache as ``entry``'s artefact ``artefact`` and ``ensure`` the entry."""
    s = _settings(settings)
    art = entry.artefact(artefact)
    if not art.recorded:
        raise ArtefactError(
            f"{entry.name}: {art.filename} is pinned by a published digest; `sleuth models pull {entry.name}` "
            "fetches and verifies it (put the file in SLEUTH_MODEL_MIRROR to pull it offline)"
        )
    vdir = cache_dir(entry, s)
    vdir.mkdir(parents=True, exist_ok=True)
    with _file_lock(vdir / ".lock"):
        before = _recorded(vdir, art)
        if before is not None and not force:
            sha = sha256_file(file)
            if sha != before["sha256"]:
                raise ArtefactError(
                    f"{entry.name}: {what} (sha256 {sha}) differs from the {art.filename} recorded on "
                    f"{before.get('recorded', '?')} from {before.get('source', '?')} (sha256 {before['sha256']}); "
                    f"the cache is unchanged (`sleuth models import --force` replaces it)"
                )
        if before is None or force:
            with open(file, "rb") as src:
                got = _install_verified(entry, art, vdir / art.filename, what, lambda w: _copy_stream(src, w))
            _write_digest(entry, vdir, art, got)
            log.info("%s: imported %s as %s, sha256 %s recorded", entry.name, what, art.filename, got.sha256)
    try:
        return ensure(entry, s)
    except ArtefactError:
        if before is None:
            with _file_lock(vdir / ".lock"):
                _forget(entry, vdir, art)
        raise
