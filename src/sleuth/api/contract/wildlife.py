"""Animal Detect's routes: the image uploads (multipart or JSON with base64), detect-url, results, species, models."""

from __future__ import annotations

from sleuth.api.openapi import (
    Schema,
    array,
    binary,
    boolean,
    integer,
    json_content,
    multipart,
    nullable,
    number,
    obj,
    or_empty,
    request_body,
    string,
)

MAX_IMAGES = 10

_OPTIONS: dict[str, Schema] = {
    "threshold": number("Minimum box score (default 0.2)", 0.01, 0.99),
    "classify": boolean("Species classification (false: detector labels only)", True),
    "country": string("Geofence: ISO 3166 alpha-2 or alpha-3 code, or the English name", minLength=1, maxLength=100),
    "latitude": number("Area hint inside `country` (with longitude)", -90, 90),
    "longitude": number("Area hint inside `country` (with latitude)", -180, 180),
    "metadata": boolean("Add each image's EXIF metadata", False),
    "smooth_herd": boolean("Give every animal of an image its most frequent label", False),
    "top_candidate": integer("Add the N best classifier candidates to each box (needs classify)", 1, 10),
}
# each option may be empty (the default), in a form and in JSON alike
OPTIONS: dict[str, Schema] = {k: or_empty(v) for k, v in _OPTIONS.items()}
_B64 = string("The image, base64 (a `data:image/...;base64,` URL too)", minLength=1, contentEncoding="base64")
_IMAGE_FILE = binary("A JPEG, PNG, WebP or BMP image")


def upload_body(*, single: bool) -> dict[str, object]:
    """The request body of /v1/detect (``single``) and the batch routes: multipart files, or JSON base64."""
    if single:
        form = multipart({"image": _IMAGE_FILE, **OPTIONS}, required=["image"])
        js = json_content(obj({"image": _B64, **OPTIONS}, required=["image"]))
    else:
        files = array(_IMAGE_FILE, f"1-{MAX_IMAGES} images (repeat the field)", 1, MAX_IMAGES)
        form = multipart({"images": files, **OPTIONS}, required=["images"])
        js = json_content(
            obj({"images": array(_B64, f"1-{MAX_IMAGES} base64 images", 1, MAX_IMAGES), **OPTIONS}, required=["images"])
        )
    return request_body(
        form, js, description="Each option at most once; the combined raw images within SLEUTH_MAX_RAW_IMAGES_MB"
    )


DETECT_URL_BODY = request_body(
    json_content(
        obj(
            {"url": string("A public http(s) URL of one image", minLength=1, format="uri"), **OPTIONS}, required=["url"]
        )
    )
)

TAXONOMY = obj({}, additionalProperties={"type": ["string", "null"]}, description="kingdom ... species")
ANNOTATION = obj(
    {
        "id": integer(minimum=0),
        "bbox": array(number(), "[x, y, width, height], normalised to the image", 4, 4),
        "score": number(minimum=0, maximum=1),
        "label": string(),
        "taxonomy": TAXONOMY,
        "top_candidates": array(
            obj({"label": string(), "score": number(), "taxonomy": TAXONOMY}, required=["label", "score"])
        ),
    },
    required=["id", "bbox", "score", "label"],
)
DETECTION = obj(
    {"category": integer("1 animal, 2 human, 3 vehicle"), "conf": number(), "bbox": array(number(), "", 4, 4)},
    additionalProperties=True,
)
INFO = obj(
    {
        "processing_time_ms": integer(),
        "model_version": string(),
        "model_id": string(),
        "threshold_applied": number(),
        "country_processed": nullable(string()),
    },
    additionalProperties=True,
)
ITEM_ERROR = obj({"code": string(), "message": string()}, required=["code", "message"])
_STORED = {
    "status": string("success (stored results)"),
    "endpoint": string("The route that produced it"),
    "created_at": string(format="date-time"),
    "completed_at": nullable(string(format="date-time")),
}
SINGLE = obj(
    {
        "id": string("The result id (GET /v1/detect/{id})"),
        "expires_at": string(format="date-time"),
        "annotations": array(ANNOTATION),
        "detections": array(DETECTION, "Filter routes: detector boxes"),
        "metadata": obj({}, additionalProperties=True),
        "info": INFO,
        **_STORED,
    },
    required=["id", "expires_at", "info"],
    additionalProperties=True,
)
BATCH_ITEM = obj(
    {
        "index": integer(minimum=0),
        "filename": string(),
        "annotations": array(ANNOTATION),
        "detections": array(DETECTION),
        "metadata": obj({}, additionalProperties=True),
        "info": INFO,
        "status": string("failed, for an image that could not be processed"),
        "error": ITEM_ERROR,
    },
    required=["index", "filename", "info"],
)
BATCH = obj(
    {
        "id": string(),
        "expires_at": string(format="date-time"),
        "results": array(BATCH_ITEM),
        "info": obj(
            {
                "total_processed": integer(),
                "total_failed": integer(),
                "total_time_ms": integer(),
                "model_version": string(),
                "model_id": string(),
                "country_processed": nullable(string()),
                "threshold_applied": number(),
            },
            additionalProperties=True,
        ),
        **_STORED,
    },
    required=["id", "expires_at", "results", "info"],
    additionalProperties=True,
)
PENDING = obj(
    {"id": string(), "status": string(enum=["awaiting_upload", "queued", "processing"])}, required=["id", "status"]
)
FAILED = obj(
    {"id": string(), "status": string(enum=["error"]), "error": ITEM_ERROR}, required=["id", "status", "error"]
)
STORED_RESULT = {"anyOf": [SINGLE, BATCH, FAILED]}
SPECIES = obj(
    {
        "country": string("CCA3"),
        "total": integer(minimum=0),
        "limit": integer(),
        "offset": integer(),
        "species": array(obj({"label": string(), "taxonomy": TAXONOMY}, required=["label"])),
    },
    required=["country", "total", "species"],
    additionalProperties=True,
)
MODELS = obj(
    {
        "models": array(
            obj(
                {
                    "model_id": string(),
                    "model_version": string(),
                    "profile": string(),
                    "kind": string(enum=["detect", "filter"]),
                    "detector": nullable(string()),
                    "relabeler": nullable(string()),
                    "classifier": nullable(string()),
                    "description": nullable(string()),
                },
                required=["model_id", "profile", "kind"],
            )
        ),
        "installed": array(
            obj(
                {
                    "name": string("catalog name (`sleuth models pull NAME`)"),
                    "version": string(),
                    "kind": string(enum=["detector", "classifier"]),
                    "description": string(),
                },
                required=["name", "kind"],
            ),
            "detectors and classifiers installed in the model cache and usable by the profiles' settings",
        ),
    },
    required=["models"],
    additionalProperties=True,
)
