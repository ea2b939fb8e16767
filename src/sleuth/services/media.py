"""Media intake shared by the deepfake API: type allowlist, sniffing, safe zip extraction."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

AUDIO_EXT = {".wav", ".mp3", ".ogg", ".m4a", ".aac", ".flac"}
VIDEO_EXT = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".wmv"}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".webp"}
ALLOWED_EXT = AUDIO_EXT | VIDEO_EXT | IMAGE_EXT
ARCHIVE_EXT = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}


class MediaRejected(ValueError):
    pass


MAX_ZIP_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY = 16 * 1024 * 1024


def check_zip_directory(f: BinaryIO, max_entries: int = MAX_ZIP_ENTRIES) -> None:
    """Refuse an archive whose central directory is too large *before* zipfile parses it all.

    ``zipfile.ZipFile`` builds a ZipInfo per entry (~0.5 KB each), so a zip of millions of tiny
    entries would exhaust memory while being opened. Reads only the end-of-central-directory record.
    """
    import struct

    f.seek(0, 2)
    size = f.tell()
    tail_len = min(size, 65_557)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise MediaRejected("file is not a valid zip archive (no end-of-central-directory record)")
    _sig, _disk, _cd_disk, _n_here, n_total, cd_size, _cd_off, _clen = struct.unpack("<IHHHHIIH", tail[at : at + 22])
    if n_total == 0xFFFF or cd_size == 0xFFFFFFFF:
        raise MediaRejected("zip64 archives are not accepted (too many entries or too large)")
    if n_total > max_entries or cd_size > MAX_CENTRAL_DIRECTORY:
        raise MediaRejected(f"zip holds {n_total} entries; at most {max_entries} are accepted")
    f.seek(0)


def media_type_for(filename: str) -> str | None:
    ext = PurePosixPath(filename.lower()).suffix
    if ext in AUDIO_EXT:
        return "audio"
    if ext in VIDEO_EXT:
        return "video"
    if ext in IMAGE_EXT:
        return "image"
    return None


MAX_NAME = 200  # characters kept of an upload's name (the extension always survives)


def safe_name(filename: str, fallback: str = "file") -> str:
    base = PurePosixPath(filename.replace("\\", "/")).name
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in base).strip(" .")
    if len(cleaned) > MAX_NAME:  # shorten the stem, never the extension
        stem, dot, ext = cleaned.rpartition(".")
        if dot and stem and len(ext) <= 10:
            cleaned = f"{stem[: MAX_NAME - len(ext) - 1].rstrip(' .')}.{ext}"
        else:
            cleaned = cleaned[:MAX_NAME]
    return cleaned or fallback


@dataclass(frozen=True)
class ZipMember:
    name: str  # flattened, unique
    info: zipfile.ZipInfo


def zip_members(zf: zipfile.ZipFile, *, max_files: int, max_total: int, max_ratio: float = 200.0) -> list[ZipMember]:
    """The media entries of a zip: flattened, de-duplicated, with bomb/symlink/nesting checks.

    Non-media entries (including nested archives) are skipped; a symlink entry is skipped;
    declared sizes over the total budget or absurd compression ratios are refused before
    anything is extracted (the extraction itself is capped again by ``read_member``).
    """
    out: list[ZipMember] = []
    seen: set[str] = set()
    total = 0
    if len(zf.infolist()) > MAX_ZIP_ENTRIES:
        raise MediaRejected(f"zip holds more than {MAX_ZIP_ENTRIES} entries")
    for info in zf.infolist():
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            continue
        if info.flag_bits & 0x1:
            raise MediaRejected(f"zip entry {info.filename!r} is encrypted")
        name = safe_name(info.filename)
        if name.startswith("._") or "__MACOSX" in info.filename:
            continue
        if media_type_for(name) is None:
            continue  # non-media, nested archives included
        total += info.file_size
        if total > max_total:
            raise MediaRejected(f"zip content exceeds the {max_total / 1e6:g} MB total upload limit")
        if info.compress_size and info.file_size / max(1, info.compress_size) > max_ratio:
            raise MediaRejected(f"zip entry {info.filename!r} has a suspicious compression ratio (zip bomb?)")
        stem, dot, ext = name.rpartition(".")
        candidate, n = name, 1
        while candidate.lower() in seen:
            candidate = f"{stem}_{n}{dot}{ext}"
            n += 1
        seen.add(candidate.lower())
        out.append(ZipMember(candidate, info))
        if len(out) > max_files:
            raise MediaRejected(f"zip holds more than {max_files} media files")
    return out


def read_member(zf: zipfile.ZipFile, member: ZipMember, limit: int) -> Iterator[bytes]:
    """Stream a member's bytes, refusing to inflate past ``limit`` (the declared size can lie)."""
    n = 0
    with zf.open(member.info) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return
            n += len(chunk)
            if n > limit or n > member.info.file_size:
                raise MediaRejected(f"zip entry {member.info.filename!r} inflates past its declared size")
            yield chunk


class _ChunkReader:
    """A file-like over a chunk iterator (feeds Storage.put without buffering everything)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._it = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def as_stream(chunks: Iterator[bytes]) -> BinaryIO:
    return _ChunkReader(chunks)  # type: ignore[return-value]


def sniff_ok(head: bytes, media_type: str) -> bool:
    """True when the content (magic bytes, :mod:`sleuth.services.media_sniff`) can hold ``media_type``."""
    from sleuth.services.media_sniff import sniff

    found = sniff(head)
    return found is not None and media_type in found.media_types
