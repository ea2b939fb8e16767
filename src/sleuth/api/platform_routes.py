"""Health, readiness and usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.contract import platform as doc
from sleuth.api.deps import PlatformDep, UsageAuth
from sleuth.api.openapi import responses
from sleuth.platform import credits
from sleuth.platform.usage import request_counts

router = APIRouter()
usage_router = APIRouter()  # Animal Detect's /v1/usage: a wildlife route (its aliases too)


@router.get("/healthz", tags=["platform"], responses=responses(routing.PLATFORM, {200: doc.HEALTH}))
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["platform"], responses=responses(routing.PLATFORM, {200: doc.READY, 503: doc.READY}))
def readyz(platform: PlatformDep) -> Any:
    """Readiness: the database answers and storage is writable."""
    checks: dict[str, str] = {}
    ok = True
    try:
        with platform.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # pragma: no cover - exercised by a stopped DB
        checks["database"] = f"error: {type(e).__name__}"
        ok = False
    try:
        platform.storage.put(".readyz", b"ok")
        platform.storage.delete(".readyz")
        checks["storage"] = "ok"
    except Exception as e:  # pragma: no cover
        checks["storage"] = f"error: {type(e).__name__}"
        ok = False
    from fastapi.responses import JSONResponse

    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@usage_router.get("/v1/usage", tags=["platform"], responses=responses(routing.WILDLIFE, {200: doc.USAGE}))
async def usage(principal: UsageAuth, platform: PlatformDep) -> dict[str, Any]:
    """Credits, billing, request counts and rate-limit state (Animal Detect's shape)."""
    today, month = await run_in_threadpool(request_counts, platform.db, principal.team_id)
    rl = platform.limiter.peek(principal.key_id, "inference")
    if platform.settings.billing_enabled:
        bal = await run_in_threadpool(credits.balance, platform.db, principal.team_id)
        credit_block: dict[str, Any] = {
            "included_total": bal.granted_total,
            "included_used": bal.captured_total,
            "included_remaining": bal.available,
            "top_up_balance": 0,
            "grace_limit": 0,
            "grace_used": 0,
            "grace_remaining": 0,
            "total_available": bal.available,
            "reserved": bal.reserved_open,
        }
        status = "active"
    else:
        credit_block = dict.fromkeys(doc.CREDIT_FIELDS)
        credit_block["unlimited"] = True
        status = "unlimited"
    return {
        "credits": credit_block,
        "billing": {
            "plan_code": "self-hosted",
            "status": status,
            "billing_interval": None,
            "data_policy": f"results retained {platform.settings.result_ttl_days:g} days",
            "scheduled_plan_code": None,
            "scheduled_billing_interval": None,
            "scheduled_change_at": None,
            "current_period_end": None,
            "grace_expires_at": None,
        },
        "requests": {"today": today, "this_month": month},
        "rate_limit": {"limit": rl.limit, "remaining": rl.remaining, "reset_at": _iso(rl.reset_at)},
        "user_id": principal.team_id,
    }


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.PLATFORM)
    routing.mount(app, usage_router, routing.WILDLIFE)
