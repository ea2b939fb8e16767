"""Finding and loading catalog TOML files (packaged, extra folders), name lookup, ``module:attr`` imports."""

from __future__ import annotations

import importlib
import importlib.resources
import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sleuth.engine.catalog.entries import CatalogEntry, CatalogError, ModelNotFoundError, _parse_entry
from sleuth.settings import Settings


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
