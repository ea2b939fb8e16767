"""Stored wildlife results shaped exactly like the API's (a /v1/batch-detect answer of this server, trimmed), for
the review and export tests; and helpers to unpack an export."""

from __future__ import annotations

import copy
import io
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

DOG = {
    "id": 0,
    "bbox": [0.2805, 0.1273, 0.508, 0.6449],
    "score": 0.785156,
    "label": "german shepherd",
    "taxonomy": {
        "id": "344052cd-b671-5a20-8ec7-c11c95e18be0",
        "class": "mammalia",
        "order": "carnivora",
        "family": "canidae",
        "genus": "canis",
        "species": "familiaris",
    },
}
FAINT = {
    "id": 1,
    "bbox": [0.7, 0.7, 0.1, 0.1],
    "score": 0.12,
    "label": "animal",
    "taxonomy": {
        "id": "1f689929-883d-4dae-958c-3d57ab5b6c16",
        "class": "",
        "order": "",
        "family": "",
        "genus": "",
        "species": "",
    },
}
INFO = {
    "model_version": "mdlite-2022.05.28-int8+coral-mobilenetv2",
    "model_id": "mdlite-coral",
    "threshold_applied": 0.1,
}


def batch_payload(result_id: str) -> dict[str, Any]:
    return {
        "id": result_id,
        "expires_at": "2099-01-01T00:00:00.000Z",
        "results": [
            {
                "index": 0,
                "filename": "domestic_dog.jpg",
                "annotations": [copy.deepcopy(DOG), copy.deepcopy(FAINT)],
                "metadata": {
                    "image_width": 2048,
                    "image_height": 1536,
                    "file_size": 660058,
                    "datetime_original": "2017:07:13 12:09:23",
                    "make": "RECONYX",
                },
                "info": dict(INFO),
            },
            {
                "index": 1,
                "filename": "blank.jpg",
                "annotations": [],
                "metadata": {
                    "image_width": 2048,
                    "image_height": 1536,
                    "file_size": 409295,
                    "datetime_original": "2017:07:13 12:09:40",
                },
                "info": dict(INFO),
            },
            {
                "index": 2,
                "filename": "broken.jpg",
                "annotations": [],
                "status": "failed",
                "error": {"code": "invalid_image", "message": "broken.jpg: cannot identify image file"},
                "info": dict(INFO),
            },
        ],
        "info": {**INFO, "total_processed": 2, "total_failed": 1, "country_processed": "USA"},
    }


def store(db: Any, team_id: str, payload: dict[str, Any], endpoint: str = "/v1/batch-detect") -> str:
    from sleuth.db.models import StoredResult, utcnow

    rid = payload.get("id") or str(uuid.uuid4())
    with db.session() as s:
        s.add(
            StoredResult(
                id=rid,
                team_id=team_id,
                endpoint=endpoint,
                status="success",
                payload=payload,
                created_at=utcnow(),
                completed_at=utcnow(),
                expires_at=utcnow() + timedelta(days=1),
            )
        )
    return rid


def new_batch(db: Any, team_id: str) -> str:
    rid = str(uuid.uuid4())
    return store(db, team_id, batch_payload(rid))


def unzip(content: bytes, dest: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        zf.extractall(dest)
    return dest
