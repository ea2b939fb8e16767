"""Mirror folders for air-gapped installs: which artefacts a cache lacks (and where a mirror must hold each),
and ``write_mirror``, which copies a working cache's verified artefacts into the layout ``SLEUTH_MODEL_MIRROR``
reads (``<mirror>/<artefact mirror path>``, default ``<model name>/<filename>``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sleuth.engine.catalog.digests import _recorded
from sleuth.engine.catalog.entries import Artefact, ArtefactError, CatalogEntry
from sleuth.engine.catalog.integrity import sha256_file
from sleuth.engine.catalog.sources import _settings, cache_dir, mirror_relpath, mirror_root
from sleuth.settings import Settings


@dataclass(frozen=True)
class MissingFile:
    """An artefact the cache lacks: what it is, its digest, and where a mirror folder must hold it."""

    model: str
    artefact: Artefact
    relpath: str  # under the mirror folder

    @property
    def digest(self) -> str:
        a = self.artefact
        if a.sha256:
            return f"sha256 {a.sha256}"
        return f"md5 {a.md5}" if a.md5 else "no published digest (sha256 recorded at first download)"

    @property
    def source(self) -> str:
        a = self.artefact
        return a.url or (f"wheel {a.wheel} member {a.member}" if a.wheel else "a mirror only")


def _cached(entry: CatalogEntry, art: Artefact, vdir: Path) -> Path | None:
    """The cached file of ``art`` when it verifies (sha256 pin, or the sha256 recorded for an md5 pin)."""
    p = vdir / art.filename
    if not p.is_file():
        return None
    sha, size = art.sha256, art.size
    if art.tofu:
        rec = _recorded(vdir, art)
        if rec is None:
            return None
        sha, size = rec["sha256"], rec["size"]
    if p.stat().st_size != size or sha256_file(p) != sha:
        return None
    return p


def missing_files(entries: Iterable[CatalogEntry], settings: Settings | None = None) -> list[MissingFile]:
    """Every artefact of ``entries`` that the cache does not hold verified (what a pull still has to fetch)."""
    s = _settings(settings)
    out = []
    for e in entries:
        vdir = cache_dir(e, s)
        out += [MissingFile(e.name, a, mirror_relpath(e, a)) for a in e.artefacts if _cached(e, a, vdir) is None]
    return out


def missing_report(missing: Sequence[MissingFile], settings: Settings | None = None) -> str:
    """One message: each file a pull could not fetch, its digest, and the exact path to put it at."""
    root = mirror_root(_settings(settings))
    where = str(root) if root is not None else "$SLEUTH_MODEL_MIRROR"
    n = len({m.relpath for m in missing})
    lines = [
        f"could not fetch {n} model file{'s' if n != 1 else ''} (no network access to "
        "their sources, and no mirror holding them). Put each file at the path shown, in a mirror folder, and "
        + ("pull again:" if root is not None else "set SLEUTH_MODEL_MIRROR to that folder, then pull again:")
    ]
    seen: set[str] = set()
    for m in missing:
        if m.relpath in seen:  # one file serving two entries (e.g. both MD-Lite graphs)
            continue
        seen.add(m.relpath)
        lines.append(f"  {where}/{m.relpath}")
        lines.append(f"      {m.model} {m.artefact.name}, {m.artefact.size or '?'} bytes, {m.digest}; from {m.source}")
    lines.append(
        "A machine with network access (or a working cache) writes such a folder with `sleuth models mirror DIR`."
    )
    return "\n".join(lines)


def write_mirror(
    dest: str | Path, entries: Iterable[CatalogEntry], settings: Settings | None = None
) -> tuple[list[Path], list[MissingFile]]:
    """Copy the verified cached artefacts of ``entries`` to ``dest`` in the mirror layout. Returns the files
    written and those the cache lacks (not written). Files already in ``dest`` with the right digest are kept;
    each copy is written to a temporary name and renamed, so a mirror never holds a partial file."""
    s = _settings(settings)
    root = Path(dest)
    written: list[Path] = []
    lacking: list[MissingFile] = []
    for e in entries:
        vdir = cache_dir(e, s)
        for a in e.artefacts:
            rel = mirror_relpath(e, a)
            src = _cached(e, a, vdir)
            if src is None:
                lacking.append(MissingFile(e.name, a, rel))
                continue
            target = root / rel
            if not target.resolve().is_relative_to(root.resolve()):
                raise ArtefactError(f"{e.name}: mirror path {rel!r} leaves the mirror folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            if (
                target.is_file()
                and target.stat().st_size == src.stat().st_size
                and sha256_file(target) == sha256_file(src)
            ):
                written.append(target)
                continue
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
            written.append(target)
    return written, lacking
