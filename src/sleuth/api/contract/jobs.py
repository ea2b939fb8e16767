"""Animal Detect's async jobs: create (JSON), the signed upload URL (raw image), submit, status, result, list."""

from __future__ import annotations

from sleuth.api.contract.wildlife import OPTIONS, STORED_RESULT
from sleuth.api.openapi import (
    array,
    boolean,
    integer,
    json_content,
    nullable,
    obj,
    raw_content,
    request_body,
    string,
)
from sleuth.services import wildlife_jobs as wj

CREATE_BODY = request_body(
    json_content(
        obj(
            {
                "operation": string("What to run (default detect)", enum=list(wj.OPERATIONS)),
                "filename": string("The image's file name", minLength=1, pattern=r"\S"),
                "content_type": string("The image's type; the upload must send it", enum=sorted(wj.CONTENT_TYPES)),
                "client_reference_id": nullable(string("Your id for it (filter GET /v1/jobs by it)", maxLength=400)),
                "options": nullable(
                    obj(
                        {
                            **OPTIONS,
                            "suppress_repeats": boolean(
                                "Drop boxes that recur at one place across the camera's images", False
                            ),
                        }
                    )
                ),
            },
            required=["filename", "content_type"],
        )
    )
)
UPLOAD_BODY = request_body(
    raw_content(
        sorted(wj.CONTENT_TYPES),
        "The image, as the job's content_type; at most SLEUTH_MAX_RAW_IMAGES_MB",
    ),
    description="The raw image bytes, with the job's Content-Type",
)
JOB = obj(
    {
        "id": string(),
        "status": string(enum=list(wj.STATUSES)),
        "operation": nullable(string()),
        "filename": string(),
        "content_type": nullable(string()),
        "client_reference_id": nullable(string()),
        "created_at": nullable(string(format="date-time")),
        "updated_at": nullable(string(format="date-time")),
        "completed_at": nullable(string(format="date-time")),
        "expires_at": nullable(string(format="date-time")),
        "submit_url": string(),
        "status_url": string(),
        "result_url": string(),
        "error": obj({"code": string(), "message": nullable(string())}),
        "upload": obj(
            {
                "url": string("The signed, single-use PUT URL"),
                "method": string(enum=["PUT"]),
                "headers": obj({}, additionalProperties={"type": ["string", "null"]}),
                "expires_at": nullable(string(format="date-time")),
                "max_bytes": integer(),
            },
            required=["url", "method"],
        ),
    },
    required=["id", "status", "filename", "submit_url", "status_url", "result_url"],
)
UPLOADED = obj({"id": string(), "uploaded_bytes": integer(minimum=1)}, required=["id", "uploaded_bytes"])
PENDING = obj(
    {"id": string(), "status": string(enum=["awaiting_upload", "queued", "processing"])}, required=["id", "status"]
)
LIST = obj(
    {"data": array(JOB), "next_cursor": nullable(string()), "has_more": boolean()},
    required=["data", "next_cursor", "has_more"],
)
RESULT = STORED_RESULT
