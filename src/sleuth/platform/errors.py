"""The one error type the platform raises; the API renders it as the JSON error envelope."""

from __future__ import annotations

from typing import Any


class SleuthError(Exception):
    """An error with an HTTP status, a machine code, a human message and optional field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        err.update(self.details)
        # `success`/`message` at the top level keep Resemble-style clients happy; `error` is the envelope.
        return {"success": False, "message": self.message, "error": err}


def bad_request(message: str, field: str | None = None, code: str = "invalid_request") -> SleuthError:
    return SleuthError(400, code, message, field)


def not_found(what: str = "Resource") -> SleuthError:
    return SleuthError(404, "not_found", f"{what} not found")
