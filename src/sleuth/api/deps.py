"""Request dependencies: the platform, the authenticated principal, rate limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from sleuth.api.openapi import AUTH_ATTR
from sleuth.platform.auth import Principal, authenticate
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError
from sleuth.platform.usage import record_request


async def json_object(request: Request, empty: object = None) -> dict[str, Any]:
    """The request body parsed as a JSON object (400 with the parser's message otherwise)."""
    try:
        body = json.loads(await request.body() or json.dumps(empty))
    except json.JSONDecodeError as e:
        raise SleuthError(400, "invalid_request", f"Invalid JSON body: {e.msg}") from None
    except UnicodeDecodeError:
        raise SleuthError(400, "invalid_request", "Invalid JSON body: not UTF-8 text") from None
    except ValueError as e:  # e.g. an integer literal past Python's 4300-digit limit
        raise SleuthError(400, "invalid_request", f"Invalid JSON body: {e}"[:300]) from None
    if not isinstance(body, dict):
        raise SleuthError(400, "invalid_request", "JSON body must be an object")
    for key, value in body.items():
        if not _storable(key) or not _storable(value):
            raise SleuthError(
                400,
                "invalid_request",
                f"'{key.encode('utf-8', 'backslashreplace').decode()[:60]}' holds text that cannot be stored: a NUL "
                "character or an unpaired UTF-16 surrogate (\\ud800-\\udfff)",
                key if _storable(key) else None,
            )
    return body


def _storable(value: object) -> bool:
    """Whether every string in a parsed JSON value is text a database can hold: no NUL (PostgreSQL refuses it in
    text), no lone surrogate (not encodable as UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        if value.isascii():  # base64 images: no copy of a large body just to look for surrogates
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def require(bucket: str) -> Callable[..., object]:
    """Dependency: authenticate the API key (``Bearer`` or ``Token token=``), apply the bucket's rate limit,
    count the request. Routes that use it are described with both security schemes in the OpenAPI."""

    async def dep(
        response: Response,
        platform: PlatformDep,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Principal:
        principal = await run_in_threadpool(authenticate, platform.db, authorization)
        if platform.settings.rate_limit_enabled:
            decision = platform.limiter.hit(principal.key_id, bucket)
            if not decision.allowed:
                raise SleuthError(
                    429,
                    "rate_limited",
                    f"Rate limit of {decision.limit} requests per minute exceeded for the "
                    f"'{bucket}' bucket; retry after {decision.retry_after} s",
                    headers=decision.headers(),
                    details={"bucket": bucket, "retry_after": decision.retry_after},
                )
            for k, v in decision.headers().items():
                response.headers[k] = v
        await run_in_threadpool(record_request, platform.db, principal.team_id)
        return principal

    setattr(dep, AUTH_ATTR, True)
    return dep


Inference = Annotated[Principal, Depends(require("inference"))]
Reference = Annotated[Principal, Depends(require("reference"))]
UsageAuth = Annotated[Principal, Depends(require("usage"))]
