"""Verification while writing: hashing, capped writes, file locks, atomic installs into the cache."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sleuth.engine.catalog.entries import CHUNK, Artefact, ArtefactError, CatalogEntry

log = logging.getLogger("sleuth.models")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _TooLarge(Exception):
    pass


class _CappedHashWriter:
    """Writes to a file while hashing (sha256, and md5 on request); refuses to write past ``cap`` bytes."""

    def __init__(self, f: IO[bytes], cap: int, md5: bool = False) -> None:
        self._f = f
        self._cap = cap
        self.size = 0
        self._h = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._cap:
            raise _TooLarge
        self._h.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        self._f.write(data)

    @property
    def sha256(self) -> str:
        return self._h.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest() if self._md5 is not None else ""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (``flock``; also excludes other threads' handles).

    POSIX only; elsewhere it degrades to no lock (atomic renames still keep the cache sane).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fcntl: Any = importlib.import_module("fcntl")
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for lock %s (another process is fetching/converting)", path)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class _Fetched:
    sha256: str
    size: int
    source: str


def _install_verified(
    entry: CatalogEntry,
    art: Artefact,
    dest: Path,
    what: str,
    produce: Callable[[_CappedHashWriter], None],
) -> _Fetched:
    """Write bytes via ``produce`` into a temp file, verify them, then rename to ``dest``.

    Checks the size (when declared), the md5 (md5-pinned artefacts) and the sha256 (when
    known: always for sha256 pins; the recorded one for md5 pins fetched before).
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            w = _CappedHashWriter(f, art.cap, md5=bool(art.md5))
            try:
                produce(w)
            except _TooLarge:
                limit = "declared" if art.size else "allowed (max_size / SLEUTH_MODEL_MAX_DOWNLOAD)"
                raise ArtefactError(
                    f"{entry.name}: {art.filename} from {what} is larger than the {limit} {art.cap} bytes; refusing it"
                ) from None
            f.flush()
            os.fsync(f.fileno())
        if art.size and w.size != art.size:
            raise ArtefactError(
                f"{entry.name}: {art.filename} from {what}: size mismatch: expected {art.size} bytes, "
                f"got {w.size} (sha256 {w.sha256})"
            )
        if art.md5 and w.md5 != art.md5:
            raise ArtefactError(
                f"{entry.name}: {art.filename} from {what}: md5 mismatch: expected {art.md5} (the "
                f"publisher's digest), got {w.md5}"
            )
        if art.sha256 and w.sha256 != art.sha256:
            recorded = " (recorded when it was first fetched)" if art.tofu else ""
            raise ArtefactError(
                f"{entry.name}: {art.filename} from {what}: sha256 mismatch: expected {art.sha256}"
                f"{recorded}, got {w.sha256}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared with a service user
        os.replace(tmp, dest)
        return _Fetched(w.sha256, w.size, what)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _copy_stream(src: IO[bytes], w: _CappedHashWriter) -> None:
    while chunk := src.read(CHUNK):
        w.write(chunk)
