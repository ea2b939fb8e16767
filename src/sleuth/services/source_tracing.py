"""Resemble's ``audio_source_tracings`` resources, read from the detects that asked for them.

A detect made with ``audio_source_tracing=true`` (``audio_source_tracing_enabled=true`` on a batch) stores
``{label, error_message}`` in its result (:mod:`sleuth.services.deepfake_analysis`). sleuth keeps one tracing
per detect, so a tracing's ``uuid`` is its detect's ``uuid`` (``detect_uuid`` says the same); it lives and
expires with the detect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sleuth.db.models import Job, JobItem, utcnow
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError
from sleuth.services import resemble_types
from sleuth.services.deepfake import KIND, _iso


def tracing_view(item: JobItem) -> dict[str, Any]:
    t = (item.result or {}).get("audio_source_tracing") or {}
    return {
        "uuid": item.id,
        "detect_uuid": item.id,
        "results": {"label": t.get("label"), "error_message": t.get("error_message")},
        "created_at": _iso(item.completed_at or item.created_at),
    }


def _traced(platform: Platform, team_id: str, item_id: str | None = None) -> list[JobItem]:
    now = utcnow()
    with platform.db.read_session() as s:
        q = (
            select(JobItem)
            .join(Job, Job.id == JobItem.job_id)
            .where(JobItem.team_id == team_id, Job.kind == KIND, JobItem.result.is_not(None))
            .where((Job.expires_at.is_(None)) | (Job.expires_at > now))
        )
        if item_id is not None:
            q = q.where(JobItem.id == item_id)
        rows = list(s.scalars(q.order_by(JobItem.created_at.desc(), JobItem.seq.desc())))
    return [r for r in rows if isinstance(r.result, dict) and r.result.get("audio_source_tracing")]


def get_tracing(platform: Platform, team_id: str, uuid: str) -> dict[str, Any]:
    rows = _traced(platform, team_id, uuid)
    if not rows:
        raise SleuthError(404, "not_found", "Not found")
    return tracing_view(rows[0])


def list_tracings(platform: Platform, team_id: str, page: int, page_size: int) -> dict[str, Any]:
    rows = _traced(platform, team_id)
    total = len(rows)
    part = rows[(page - 1) * page_size : page * page_size]
    return resemble_types.page([tracing_view(r) for r in part], total, page, page_size)
