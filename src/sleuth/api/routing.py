"""Where each route lives: the API families, their canonical paths and their alias prefixes.

Every router belongs to one family. :func:`mount` adds it to the app at its canonical paths and again under each
of the family's alias prefixes, so an alias runs the same handler with the same dependencies (auth, rate limits)
and the same OpenAPI description. The vendors' clients build their URLs from a base that differs from ours:

- Resemble's SDK uses a base ending in ``/api/`` and calls ``<base>v2/detect``; its docs use ``.../api/v2``.
  Deepfake routes are therefore also served under ``/api/v2`` and ``/v2``.
- Animal Detect's docs show an old ``/api/v1/...`` base next to the current ``/v1/...``. Wildlife routes (all
  under ``/v1``) are therefore also served under ``/api``.

Path-based machinery (body limits, the error envelope's family) asks :func:`canonical_path` first, so that it
treats an alias exactly like the route it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class Family:
    name: str
    # prefixes put in front of the canonical path to make each alias, longest first
    alias_prefixes: tuple[str, ...] = ()


WILDLIFE = Family("wildlife", alias_prefixes=("/api",))
DEEPFAKE = Family("deepfake", alias_prefixes=("/api/v2", "/v2"))
# health and readiness probes: no aliases; /v1/usage is Animal Detect's and mounted as WILDLIFE
PLATFORM = Family("platform")
FAMILIES = (WILDLIFE, DEEPFAKE, PLATFORM)

ALIAS_TAG = "aliases"


def _alias_table() -> list[tuple[str, Family]]:
    rows = [(p, f) for f in FAMILIES for p in f.alias_prefixes]
    return sorted(rows, key=lambda r: len(r[0]), reverse=True)


_ALIASES = _alias_table()


def split_alias(path: str) -> tuple[str, str | None]:
    """``(canonical path, alias prefix or None)`` for a request path.

    Only a prefix followed by ``/`` counts (``/api/v2/detect`` but not ``/api/v2x``). Whether the canonical path
    exists is the router's business: an unknown path stays unknown under either name.
    """
    for prefix, _family in _ALIASES:
        if path.startswith(prefix + "/"):
            return path[len(prefix) :], prefix
    return path, None


def canonical_path(path: str) -> str:
    return split_alias(path)[0]


def family_for_path(path: str) -> Family:
    """The family whose error envelope and limits apply to a request path (canonical or alias)."""
    canon, prefix = split_alias(path)
    if prefix is not None:
        for p, family in _ALIASES:
            if p == prefix:
                return family
    if canon.startswith("/v1/"):
        return WILDLIFE
    if canon.startswith(("/detect", "/identity", "/secure_uploads", "/audio_source_tracings")):
        return DEEPFAKE
    return PLATFORM


def mount(app: FastAPI, router: APIRouter, family: Family) -> None:
    """Add ``router`` at its canonical paths and under each alias prefix of ``family``."""
    app.include_router(router)
    for prefix in family.alias_prefixes:
        app.include_router(router, prefix=prefix)
    mounted: list[tuple[APIRouter, Family]] = app.state.__dict__.setdefault("mounted_routers", [])
    mounted.append((router, family))


def api_routes(app: FastAPI) -> list[tuple[APIRoute, str, str | None]]:
    """Every mounted API route as ``(route, served path, alias prefix or None)``."""
    out: list[tuple[APIRoute, str, str | None]] = []
    for router, family in app.state.__dict__.get("mounted_routers", []):
        for route in router.routes:
            if isinstance(route, APIRoute):
                out.append((route, route.path, None))
                out.extend((route, prefix + route.path, prefix) for prefix in family.alias_prefixes)
    return out
