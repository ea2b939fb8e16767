"""Probes and Animal Detect's /v1/usage."""

from __future__ import annotations

from sleuth.api.openapi import integer, nullable, obj, string

HEALTH = obj({"status": string(enum=["ok"])}, required=["status"])
READY = obj(
    {
        "status": string(enum=["ok", "unavailable"]),
        "checks": obj({}, additionalProperties={"type": "string"}, description="database, storage: ok or the error"),
    },
    required=["status", "checks"],
)
_N = nullable(integer())
# Animal Detect's credit counters, as /v1/usage answers them (all null with billing off)
CREDIT_FIELDS = (
    "included_total",
    "included_used",
    "included_remaining",
    "top_up_balance",
    "grace_limit",
    "grace_used",
    "grace_remaining",
    "total_available",
)
USAGE = obj(
    {
        "credits": obj(
            {k: _N for k in (*CREDIT_FIELDS, "reserved")} | {"unlimited": {"type": "boolean"}},
            description="All null, and unlimited: true, with billing off",
        ),
        "billing": obj({}, additionalProperties=True, description="plan_code, status, data_policy, ..."),
        "requests": obj({"today": integer(minimum=0), "this_month": integer(minimum=0)}),
        "rate_limit": obj({"limit": integer(), "remaining": integer(), "reset_at": string(format="date-time")}),
        "user_id": string("The team id"),
    },
    required=["credits", "billing", "requests", "rate_limit", "user_id"],
)
