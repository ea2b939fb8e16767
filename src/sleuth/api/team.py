"""The signed-in key and its team: ``GET /v1/me`` (what the web app signs in with) and the team's webhook secret
(``GET /v1/team/webhook-secret``, ``POST /v1/team/webhook-secret/rotate``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, Reference
from sleuth.api.openapi import WILDLIFE, obj, responses, string
from sleuth.platform import teams

router = APIRouter(tags=["team"])

ME = obj(
    {
        "team_id": string("The key's team"),
        "team_name": string(),
        "key_id": string(),
        "key_name": string("The name given with `sleuth keys create --name`; reviews are recorded under it"),
        "key_prefix": string("The first characters of the key, safe to show"),
        "reviewer": string("The reviewer name used when the page gives none: the key's name, else its prefix"),
    },
    required=["team_id", "team_name", "key_id", "key_name", "key_prefix", "reviewer"],
)
SECRET = obj(
    {
        "webhook_secret": string("`whsec_` + base64 key: callbacks are signed with it (Standard Webhooks)"),
        "team_id": string(),
    },
    required=["webhook_secret", "team_id"],
)


@router.get("/v1/me", summary="The signed-in API key and its team", responses=responses(WILDLIFE, {200: ME}, 401, 429))
async def me(principal: Reference, platform: PlatformDep) -> Any:
    info = await run_in_threadpool(teams.key_info, platform.db, principal.key_id)
    return {
        "team_id": info.team_id,
        "team_name": info.team_name,
        "key_id": info.key_id,
        "key_name": info.key_name,
        "key_prefix": info.key_prefix,
        "reviewer": info.reviewer,
    }


@router.get(
    "/v1/team/webhook-secret",
    summary="The team's webhook signing secret",
    responses=responses(WILDLIFE, {200: SECRET}, 401, 429),
)
async def get_webhook_secret(principal: Reference, platform: PlatformDep) -> Any:
    secret = await run_in_threadpool(teams.webhook_secret, platform.db, principal.team_id)
    return {"webhook_secret": secret, "team_id": principal.team_id}


@router.post(
    "/v1/team/webhook-secret/rotate",
    summary="Replace the team's webhook secret (effective at once)",
    responses=responses(WILDLIFE, {200: SECRET}, 401, 429),
)
async def rotate_webhook_secret(principal: Reference, platform: PlatformDep) -> Any:
    secret = await run_in_threadpool(teams.rotate_webhook_secret, platform.db, principal.team_id)
    return {"webhook_secret": secret, "team_id": principal.team_id}


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
