"""Resemble Detect's routes: /detect (multipart file, JSON url or media_token), /detect/batch, results, pages."""

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
from sleuth.services.media import ALLOWED_EXT

MAX_BATCH_FILES = 50
MAX_SECONDS = 86_400.0
_EXTS = ", ".join(sorted(e.lstrip(".") for e in ALLOWED_EXT))

OPTIONS: dict[str, Schema] = {
    "visualize": boolean("Render a visualization PNG (default: false for /detect, true for a batch)"),
    "frame_length": integer("Audio chunk length in seconds", 1, 4),
    "start_region": number("Analyse from this second", 0, MAX_SECONDS),
    "end_region": number("... to this second (greater than start_region)", 0, MAX_SECONDS),
    "max_video_secs": number("Video: analyse at most this many seconds", 0, MAX_SECONDS, exclusiveMinimum=0),
    "max_video_fps": number("Video: sample at most this many frames per second", 0, 60, exclusiveMinimum=0),
    "zero_retention_mode": boolean("Delete the media as soon as it is analysed", False),
    "callback_url": string("Public http(s) URL to POST the finished result to", minLength=1, format="uri"),
    "model_types": string("Only `image` is available", enum=["image"]),
    "pipeline": string("Only the facial pipeline is available", enum=["general->facial->object", "facial"]),
}
# Resemble options naming capabilities sleuth lacks: accepted only when false (true is a 400 naming the field)
for _name in (
    "intelligence",
    "search_identity",
    "audio_source_tracing",
    "audio_source_tracing_enabled",
    "use_llm",
    "use_reverse_search",
    "use_ood_detector",
    "privacy_mode",
):
    OPTIONS[_name] = boolean("Not available in sleuth: only false is accepted", False, enum=[False])

OPTIONS = {k: or_empty(v) for k, v in OPTIONS.items()}  # empty: the default, in a form and in JSON alike
_FILE = binary(f"One media file: {_EXTS}; at most SLEUTH_MAX_DETECT_UPLOAD_MB (150 MB by default)")
DETECT_BODY = request_body(
    multipart({"file": _FILE, **OPTIONS}, required=["file"]),
    json_content(
        {
            "oneOf": [
                obj(
                    {"url": string("A public http(s) URL of the media", minLength=1, format="uri"), **OPTIONS},
                    required=["url"],
                ),
                obj(
                    {"media_token": string("A token from POST /secure_uploads (used up)", minLength=1), **OPTIONS},
                    required=["media_token"],
                ),
            ]
        }
    ),
    description="Exactly one of a multipart `file`, a JSON `url` or a `media_token`; each option at most once",
)
BATCH_BODY = request_body(
    multipart(
        {
            "files[]": array(_FILE, f"1-{MAX_BATCH_FILES} media files (repeat the field)", 1, MAX_BATCH_FILES),
            **OPTIONS,
        },
        required=["files[]"],
    ),
    description="Repeated `files[]`, or one .zip of media files as `file`; in all within SLEUTH_MAX_BATCH_UPLOAD_MB",
)

_STR = nullable(string())
METRICS = obj(
    {
        "label": _STR,
        "score": nullable(array(number(), "Per-chunk P(fake)")),
        "certainty": _STR,
        "aggregated_score": _STR,
        "image": _STR,
    },
    additionalProperties=True,
    description="Audio metrics ({} while processing and for images)",
)
ITEM = obj(
    {
        "uuid": string(),
        "status": string(enum=["processing", "completed", "failed", "running", "staging"]),
        "media_type": string(enum=["audio", "image", "video"]),
        "filename": string(),
        "metrics": METRICS,
        "image_metrics": nullable(obj({}, additionalProperties=True)),
        "video_metrics": nullable(obj({}, additionalProperties=True)),
        "duration": _STR,
        "zero_retention_mode": boolean(),
        "file_deleted_at": nullable(string(format="date-time")),
        "media_deleted": boolean(),
        "url": nullable(string("Signed link to the media")),
        "audio_url": _STR,
        "intelligence": {"type": "null"},
        "verdict": nullable(
            obj(
                {
                    "label": string(enum=["fake", "real", "unknown"]),
                    "score": _STR,
                    "certainty": _STR,
                    "decided_by": nullable(string(enum=["faces", "audio"])),
                    "parts": obj({}, additionalProperties=True),
                },
                required=["label", "score", "certainty", "decided_by", "parts"],
                additionalProperties=True,
                description="The item's one decision at the calibrated thresholds (docs/api.md, verdict)",
            )
        ),
        "batch_uuid": _STR,
        "created_at": string(format="date-time"),
        "updated_at": nullable(string(format="date-time")),
        "error_message": _STR,
        "notes": {},
    },
    required=["uuid", "status", "media_type", "filename", "metrics", "created_at"],
    additionalProperties=True,
)
ONE = obj({"success": boolean(), "item": ITEM}, required=["success", "item"])


def page_of(item: Schema) -> Schema:
    """Resemble's paged list envelope (GET /detect, /identity, /audio_source_tracings) around ``item``."""
    return obj(
        {
            "success": boolean(),
            "page": integer(minimum=1),
            "num_pages": integer(minimum=1),
            "page_size": integer(minimum=1),
            "total_count": integer(minimum=0),
            "items": array(item),
        },
        required=["success", "page", "num_pages", "page_size", "total_count", "items"],
    )


PAGE = page_of(ITEM)
BATCH = obj(
    {
        "success": boolean(),
        "item": obj(
            {
                "uuid": string(),
                "status": string(
                    "processing until every file is terminal; then completed (all completed), partial (some "
                    "completed, some failed) or failed (all failed)",
                    enum=["processing", "completed", "partial", "failed"],
                ),
                "total_files": integer(minimum=0),
                "completed_count": integer(minimum=0),
                "failed_count": integer(minimum=0),
                "processing_count": integer(minimum=0),
                "created_at": string(format="date-time"),
                "completed_at": nullable(string(format="date-time")),
                "detect_uuids": array(string()),
                "items": array(ITEM, "With ?include=results: each file's detect, in upload order"),
            },
            required=["uuid", "status", "total_files", "detect_uuids"],
        ),
    },
    required=["success", "item"],
)
