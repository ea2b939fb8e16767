"""One JSON error envelope for every 4xx/5xx response."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sleuth.api.routing import DEEPFAKE, api_routes, canonical_path, family_for_path
from sleuth.platform.errors import SleuthError

log = logging.getLogger(__name__)

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def envelope(err: SleuthError, path: str) -> dict[str, Any]:
    """The error body for a request path: each family's envelope (described in ``sleuth.api.openapi``).

    Both carry ``success: false``, ``message`` and ``error{status, code, message, field?, ...}``; the deepfake
    family adds ``item: null``, as Resemble's error bodies have it.
    """
    body = err.body()
    if family_for_path(path) is DEEPFAKE:
        body["item"] = None
    return body


def error_response(err: SleuthError, path: str = "") -> JSONResponse:
    return JSONResponse(envelope(err, path), status_code=err.status, headers=err.headers or None)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def allowed_methods(app: FastAPI, scope: MutableMapping[str, Any]) -> str:
    """``Allow`` for a 405: the methods of every route on the path (Starlette names only the first route's)."""
    path = canonical_path(scope.get("path", ""))
    matches = [r for r, _served, prefix in api_routes(app) if prefix is None and r.path_regex.match(path)]
    # a literal path (/detect/batch) is its own resource, not an instance of a templated one (/detect/{uuid})
    literal = [r for r in matches if "{" not in r.path]
    return ", ".join(sorted({m for r in literal or matches for m in r.methods or ()}))


def install(app: FastAPI) -> None:
    @app.exception_handler(SleuthError)
    async def _sleuth(req: Request, exc: SleuthError) -> JSONResponse:
        return error_response(exc, req.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _field_of(first.get("loc", ()))
        msg = first.get("msg", "Invalid request")
        message = f"{field}: {msg}" if field else msg
        err = SleuthError(
            400,
            "validation_error",
            message,
            field,
            details={"errors": [{"field": _field_of(e.get("loc", ())), "message": e.get("msg")} for e in errors]},
        )
        return error_response(err, req.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Error"
        if exc.status_code == 404 and message == "Not Found":
            message = "Not found"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(req.app, req.scope)
        err = SleuthError(exc.status_code, _CODES.get(exc.status_code, "error"), message, headers=headers)
        return error_response(err, req.url.path)

    @app.exception_handler(Exception)
    async def _unhandled(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(SleuthError(500, "internal_error", "Internal server error"), req.url.path)
