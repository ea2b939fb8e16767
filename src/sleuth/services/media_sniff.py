"""A media file's type from its content (magic bytes), never from its name.

:func:`sniff` reads the first bytes of a file and names its format and the media types that format can hold
(an ISO-BMFF ``ftyp`` file is audio or video; a RIFF file is WAVE audio, AVI video or a WebP image).
:func:`classify` then decides the detect's ``media_type``: the content decides; a name whose extension claims
another kind of media than the content holds (a JPEG renamed ``.wav``) is refused with a message naming both,
and content no decoder here reads is refused whatever the name says.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 64  # enough for every signature below


@dataclass(frozen=True)
class Sniffed:
    format: str  # human name of the container/codec, e.g. "JPEG image", "WAVE audio"
    media_types: tuple[str, ...]  # what this format can hold; the first is the default


def _mp3_frame(head: bytes) -> bool:
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    layer = (head[1] >> 1) & 0x3
    version = (head[1] >> 3) & 0x3
    return layer != 0 and version != 1  # layer 00 and version 01 are reserved


def _adts(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0  # sync 12 bits, layer 00


def sniff(head: bytes) -> Sniffed | None:
    """The format of a file from its first :data:`HEAD_BYTES` bytes, or None if none we decode."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("JPEG image", ("image",))
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("PNG image", ("image",))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("GIF image", ("image",))
    if head[:4] == b"RIFF" and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return Sniffed("WebP image", ("image",))
        if kind == b"WAVE":
            return Sniffed("WAVE audio", ("audio",))
        if kind == b"AVI ":
            return Sniffed("AVI video", ("video",))
        return None
    if head.startswith(b"fLaC"):
        return Sniffed("FLAC audio", ("audio",))
    if head.startswith(b"OggS"):
        return Sniffed("Ogg audio", ("audio",))
    if head.startswith(b"ID3") or _mp3_frame(head):
        return Sniffed("MP3 audio", ("audio",))
    if _adts(head):
        return Sniffed("AAC audio", ("audio",))
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("Matroska/WebM video", ("video",))
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return Sniffed("ASF/WMV video", ("video",))
    box = head[4:8]
    if box == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A "):
            return Sniffed("MPEG-4 audio", ("audio", "video"))
        return Sniffed("MPEG-4/QuickTime video", ("video", "audio"))
    if box in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):  # QuickTime without ftyp
        return Sniffed("QuickTime video", ("video", "audio"))
    return None


class TypeRefused(ValueError):
    """The content is not a media type sleuth reads, or contradicts the name. ``code`` is the API error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def classify(name: str, head: bytes, name_type: str | None) -> str:
    """The ``media_type`` of an upload called ``name`` (display name) whose content starts with ``head``.

    ``name_type`` is what the name's extension claims (None when it has no known media extension).
    """
    found = sniff(head)
    if found is None:
        what = f"a {name_type} file" if name_type else "an image, audio or video file in a format sleuth reads"
        raise TypeRefused(
            f"{name!r} does not look like {what} (its content matches no supported format: "
            "JPEG, PNG, GIF, WebP; WAV, FLAC, MP3, AAC, Ogg, M4A; MP4, MOV, AVI, MKV, WebM, WMV)",
            "invalid_media" if name_type else "unsupported_media_type",
        )
    if name_type is None:
        return found.media_types[0]
    if name_type not in found.media_types:
        raise TypeRefused(
            f"{name!r} is named like a {name_type} file but its content is a {found.format}: "
            "rename it with its real extension",
            "media_type_mismatch",
        )
    return name_type
