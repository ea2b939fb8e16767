"""Request body size limits enforced while the body streams in.

A declared ``Content-Length`` over the limit is refused before any body is read. A body
without one (chunked) is counted as it arrives; the moment it passes the limit the app's
response is discarded and a 413 is sent instead, so an oversized body is never read into
memory first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sleuth.platform.errors import SleuthError

Scope = dict[str, Any]
LimitFn = Callable[[Scope], int | None]


def _too_large(limit: int) -> SleuthError:
    mb = limit / 1e6
    return SleuthError(
        413,
        "payload_too_large",
        f"Request body exceeds the {mb:g} MB limit for this endpoint",
        details={"limit_bytes": limit},
    )


class BodyLimitMiddleware:
    def __init__(self, app: Any, limit_for: LimitFn) -> None:
        self.app = app
        self.limit_for = limit_for

    async def _send_error(self, send: Any, err: SleuthError, path: str) -> None:
        from sleuth.api.errors import envelope

        body = json.dumps(envelope(err, path)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": err.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._send_error(
                        send, SleuthError(400, "invalid_request", "Bad Content-Length"), scope["path"]
                    )
                    return
                if declared > limit:
                    await self._send_error(send, _too_large(limit), scope["path"])
                    return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> dict[str, Any]:
            if state["exceeded"]:
                return {"type": "http.disconnect"}
            msg: dict[str, Any] = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: dict[str, Any]) -> None:
            if state["exceeded"] and not state["started"]:
                return  # the app's reaction to the cut body is replaced by the 413
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await self._send_error(send, _too_large(limit), scope["path"])
