"""Human review of wildlife results: ``POST /v1/reviews`` (one action), ``GET /v1/reviews`` (the state of a result's
images and their history) and ``GET /v1/labels`` (the labels a reviewer can pick). See
:mod:`sleuth.services.reviews`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, Reference, json_object
from sleuth.api.openapi import (
    WILDLIFE,
    array,
    boolean,
    integer,
    json_content,
    nullable,
    number,
    obj,
    request_body,
    responses,
    string,
)
from sleuth.platform import teams
from sleuth.platform.errors import bad_request
from sleuth.services import labels
from sleuth.services import reviews as svc

router = APIRouter(tags=["reviews"])

BBOX = array(number(minimum=0, maximum=1), "[x, y, width, height], normalised to the image", 4, 4)
ACTION = obj(
    {
        "result_id": string("A stored result's id, or an async job's id", maxLength=36),
        "index": integer("Which image of a batch result (0 for single-image results)", 0, 10),
        "action": string("What the reviewer decided", enum=list(svc.ACTIONS)),
        "box": integer("confirm / correct / reject: the box's number (see GET /v1/reviews)", 0, 1000),
        "label": string("correct / add: a common name, binomial or SpeciesNet label string", maxLength=400),
        "category": string(
            "correct / add: the detector class (default: from the label)", enum=["animal", "person", "vehicle"]
        ),
        "bbox": BBOX,
        "reviewer": string("Who reviews (default: the API key's name)", maxLength=200),
        "comment": string(maxLength=2000),
    },
    required=["result_id", "action"],
)
BOX = obj(
    {
        "box": integer(),
        "origin": string(enum=["machine", "added"]),
        "bbox": BBOX,
        "category": string(enum=["animal", "person", "vehicle"]),
        "label": nullable(string("The label shown (common name)")),
        "label_string": nullable(string("The SpeciesNet label string, or the plain name typed")),
        "score": nullable(number("The model's score (null for an added box)")),
        "machine_label": nullable(string("corrected: the model's label")),
        "status": string(enum=["unreviewed", "confirmed", "corrected", "rejected", "added"]),
        "repeat": boolean("The model's box recurs at this place across the camera's images (a logo, a branch)"),
        "reviewer": nullable(string()),
        "reviewed_at": nullable(string(format="date-time")),
    }
)
REVIEW = obj(
    {
        "id": string(),
        "result_id": string(),
        "index": integer(),
        "action": string(enum=list(svc.ACTIONS)),
        "box": nullable(integer()),
        "label": nullable(string()),
        "label_string": nullable(string()),
        "category": nullable(string()),
        "bbox": nullable(BBOX),
        "reviewer": string(),
        "comment": nullable(string()),
        "created_at": string(format="date-time"),
    }
)
STATE = obj(
    {
        "result_id": string(),
        "index": integer(),
        "reviewed": boolean("Whether anyone reviewed this image"),
        "blank": boolean("Marked blank by a reviewer"),
        "reviewer": nullable(string("Who acted last")),
        "reviewed_at": nullable(string(format="date-time")),
        "boxes": array(BOX),
        "history": array(REVIEW, "Every action, oldest first"),
    }
)


@router.post(
    "/v1/reviews",
    status_code=201,
    summary="Review one image of a result: confirm, correct or reject a box, add a box, mark it blank",
    openapi_extra=request_body(json_content(ACTION)),
    responses=responses(WILDLIFE, {201: obj({"review": REVIEW, "image": STATE})}, 400, 401, 404, 429),
)
async def add_review(request: Request, principal: Reference, platform: PlatformDep) -> Any:
    body = await json_object(request)
    info = await run_in_threadpool(teams.key_info, platform.db, principal.key_id)
    row, state = await run_in_threadpool(
        svc.add_review, platform, principal.team_id, principal.key_id, info.reviewer, body
    )
    return JSONResponse({"review": svc.review_view(row), "image": state.to_dict(with_history=True)}, status_code=201)


@router.get(
    "/v1/reviews",
    summary="The review state of a result's images (every box, what was decided, by whom, when)",
    responses=responses(WILDLIFE, {200: obj({"result_id": string(), "images": array(STATE)})}, 400, 401, 404, 429),
)
async def get_reviews(
    principal: Reference,
    platform: PlatformDep,
    result_id: Annotated[str, Query(max_length=36, description="A stored result's id, or an async job's id")],
    index: Annotated[int | None, Query(ge=0, le=10, description="Only this image")] = None,
) -> Any:
    def run() -> dict[str, Any]:
        payload = svc.stored_payload(platform, principal.team_id, result_id)
        states = svc.states_of(result_id, payload, svc.reviews_for(platform, principal.team_id, [result_id]))
        if index is not None:
            if index >= len(states):
                raise bad_request(f"index must be between 0 and {len(states) - 1} for this result", "index")
            states = [states[index]]
        return {"result_id": result_id, "images": [s.to_dict(with_history=True) for s in states]}

    return await run_in_threadpool(run)


@router.get(
    "/v1/labels",
    summary="Labels a reviewer can give a box (the classifier pack's taxonomy, person, vehicle, animal)",
    responses=responses(
        WILDLIFE,
        {
            200: obj(
                {
                    "labels": array(
                        obj(
                            {
                                "label": string(),
                                "label_string": string(),
                                "category": integer(),
                                "taxonomy": obj({}, additionalProperties={"type": "string"}),
                            }
                        )
                    ),
                    "total": integer(),
                }
            )
        },
        400,
        401,
        429,
    ),
)
async def list_labels(
    principal: Reference,
    platform: PlatformDep,
    q: Annotated[str | None, Query(max_length=200, description="Only labels containing this text")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 5000,
) -> Any:
    entries = await run_in_threadpool(labels.catalog, platform.settings.classifier_pack)
    if q:
        needle = q.strip().lower()
        entries = tuple(e for e in entries if needle in e.name.lower() or needle in e.label.lower())
    return {"labels": [e.to_dict() for e in entries[:limit]], "total": len(entries)}


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
