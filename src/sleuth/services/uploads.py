"""Uploads: what the web app sent in one go, so that a team can come back to it.

* A **wildlife** upload names its deployment (name, latitude/longitude, camera). Its images go through the async
  jobs API (one job per image); each job's ``client_reference_id`` is ``<camera>/<upload id>/<relative path>``
  (the camera first, as in Animal Detect's example, so per-camera logic keys on the part before the first ``/``).
  The deployment's coordinates give the geofence country (:func:`sleuth.pipelines.geo_reverse.country_for`,
  unless the page names one) and the Camtrap DP deployment of every export of the upload.
* A **deepfake** upload records the batch (``batch_uuid``) the page created with ``POST /detect/batch``.

Uploads expire with the results (``SLEUTH_RESULT_TTL_DAYS``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from sleuth.db.models import Job, JobItem, StoredResult, Upload, new_id, utcnow
from sleuth.pipelines import geo
from sleuth.pipelines.geo_reverse import country_for
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.platform.expiry import register_sweeper

KINDS = ("wildlife", "deepfake")
JOB_STATES = ("awaiting_upload", "queued", "processing", "completed", "failed", "expired")


def _iso(dt: Any) -> str | None:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z") if dt else None


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return s[:80] or "camera"


def _text(d: dict[str, Any], name: str, field: str, limit: int = 200) -> str | None:
    v = d.get(name)
    if v in (None, ""):
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise bad_request(f"{field} must be a string of at most {limit} characters", field)
    return v.strip() or None


def _coord(d: dict[str, Any], name: str, field: str) -> float | None:
    v = d.get(name)
    if v in (None, ""):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise bad_request(f"{field} must be a number", field)
    try:
        return float(v)
    except OverflowError:  # an integer past float's range
        raise bad_request(f"{field} must be a number from -180 to 180", field) from None


def parse_deployment(raw: Any) -> dict[str, Any]:
    """Validate a deployment ``{name, latitude, longitude, camera_id, camera_model, location_name, country}``."""
    if not isinstance(raw, dict):
        raise bad_request("deployment must be an object with at least a name", "deployment")
    name = _text(raw, "name", "deployment.name")
    if not name:
        raise bad_request("deployment.name is required", "deployment.name")
    lat, lon = _coord(raw, "latitude", "deployment.latitude"), _coord(raw, "longitude", "deployment.longitude")
    if (lat is None) != (lon is None):
        raise bad_request("deployment latitude and longitude go together", "deployment.latitude")
    out: dict[str, Any] = {
        "deployment_id": slug(name),
        "name": name,
        "latitude": lat,
        "longitude": lon,
        "camera_id": _text(raw, "camera_id", "deployment.camera_id"),
        "camera_model": _text(raw, "camera_model", "deployment.camera_model"),
        "location_name": _text(raw, "location_name", "deployment.location_name"),
        "country": None,
        "country_source": None,
        "admin1": None,
    }
    if lat is not None and lon is not None:
        try:
            geo.validate_lat_lon(lat, lon)
        except ValueError as e:
            raise bad_request(str(e), "deployment.latitude") from None
    country = _text(raw, "country", "deployment.country")
    if country:
        try:
            out["country"], out["country_source"] = geo.resolve_country(country), "given"
        except ValueError as e:
            raise bad_request(str(e), "deployment.country", "invalid_country") from None
    elif lat is not None and lon is not None:
        found = country_for(lat, lon)
        if found:
            out["country"], out["country_source"] = found, "coordinates"
    if out["country"] and lat is not None and lon is not None:
        out["admin1"] = geo.admin1_for(out["country"], lat, lon)
    return out


def job_options(deployment: dict[str, Any], raw: Any) -> dict[str, Any]:
    """The ``options`` each of the upload's jobs is created with (geofence from the deployment)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("options must be an object", "options")
    opts: dict[str, Any] = {"metadata": True, "top_candidate": 5}
    thr = raw.get("threshold")
    if thr is not None:
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0.01 <= thr <= 0.99:
            raise bad_request("options.threshold must be a number from 0.01 to 0.99", "options.threshold")
        opts["threshold"] = float(thr)
    for k in ("classify", "smooth_herd", "suppress_repeats"):
        if raw.get(k) is not None:
            if not isinstance(raw[k], bool):
                raise bad_request(f"options.{k} must be true or false", f"options.{k}")
            opts[k] = raw[k]
    if opts.get("classify") is False:
        del opts["top_candidate"]
    if deployment.get("country"):
        opts["country"] = deployment["country"]
        if deployment.get("latitude") is not None:
            opts["latitude"], opts["longitude"] = deployment["latitude"], deployment["longitude"]
    return opts


def create(platform: Platform, team_id: str, created_by: str, body: dict[str, Any]) -> Upload:
    kind = body.get("kind", "wildlife")
    if kind not in KINDS:
        raise bad_request(f"kind must be one of {', '.join(KINDS)}", "kind")
    name = _text(body, "name", "name") or ""
    count = body.get("file_count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100_000:
        raise bad_request("file_count must be an integer from 0 to 100000", "file_count")
    up = Upload(id=new_id(), team_id=team_id, kind=kind, name=name, file_count=count, created_by=created_by[:200])
    now = utcnow()
    up.created_at = now
    up.expires_at = now + timedelta(days=platform.settings.result_ttl_days)
    for name, only in (("batch_uuid", "deepfake"), ("deployment", "wildlife"), ("options", "wildlife")):
        if kind != only and body.get(name) is not None:
            raise bad_request(f"{name} is only for a {only} upload", name)
    if kind == "wildlife":
        dep = parse_deployment(body.get("deployment"))
        up.deployment, up.options = dep, job_options(dep, body.get("options"))
        up.name = name or dep["name"]
        up.reference_prefix = f"{slug(dep.get('camera_id') or dep['name'])}/{up.id}/"
    else:
        batch = body.get("batch_uuid")
        if not isinstance(batch, str) or not batch:
            raise bad_request("a deepfake upload needs the batch_uuid that POST /detect/batch returned", "batch_uuid")
        with platform.db.read_session() as s:
            job = s.scalar(select(Job).where(Job.id == batch, Job.team_id == team_id, Job.kind == "deepfake"))
        if job is None:
            raise SleuthError(404, "not_found", "Batch not found", "batch_uuid")
        up.batch_id, up.file_count, up.options = batch, job.total, {}
    with platform.db.session() as s:
        s.add(up)
    return get(platform, team_id, up.id)


def get(platform: Platform, team_id: str, upload_id: str) -> Upload:
    with platform.db.read_session() as s:
        up = s.get(Upload, upload_id)
        if up is None or up.team_id != team_id or up.expires_at <= utcnow():
            raise SleuthError(404, "not_found", "Upload not found or expired")
        s.expunge(up)
    return up


def upload_jobs(platform: Platform, up: Upload) -> list[tuple[Job, JobItem]]:
    """The wildlife jobs of an upload, in the order they were created."""
    if up.kind != "wildlife" or not up.reference_prefix:
        return []
    with platform.db.read_session() as s:
        rows = s.execute(
            select(Job, JobItem)
            .join(JobItem, JobItem.job_id == Job.id)
            .where(
                Job.team_id == up.team_id,
                Job.kind == "wildlife",
                Job.client_reference_id.startswith(up.reference_prefix, autoescape=True),
            )
            .order_by(Job.created_at, Job.id)
        ).all()
        for j, i in rows:
            s.expunge(j)
            s.expunge(i)
    return [(j, i) for j, i in rows]


def counts(platform: Platform, up: Upload) -> dict[str, int]:
    from sleuth.services import wildlife_jobs as wj

    out = dict.fromkeys(JOB_STATES, 0)
    if up.kind == "deepfake":
        with platform.db.read_session() as s:
            job = s.get(Job, up.batch_id) if up.batch_id else None
        if job is None:
            return {"total": up.file_count, "completed": 0, "failed": 0, "pending": 0}
        done = job.completed_count + job.failed_count
        return {
            "total": job.total,
            "completed": job.completed_count,
            "failed": job.failed_count,
            "pending": job.total - done,
        }
    for job, _item in upload_jobs(platform, up):
        out[wj.status_of(job)] += 1
    total = sum(out.values())
    pending = out["awaiting_upload"] + out["queued"] + out["processing"]
    return {"total": total, "declared": up.file_count, "pending": pending, **out}


def view(platform: Platform, up: Upload, with_counts: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": up.id,
        "kind": up.kind,
        "name": up.name,
        "created_at": _iso(up.created_at),
        "expires_at": _iso(up.expires_at),
        "created_by": up.created_by,
        "file_count": up.file_count,
    }
    if up.kind == "wildlife":
        out.update(reference_prefix=up.reference_prefix, deployment=up.deployment, job_options=up.options)
    else:
        out["batch_uuid"] = up.batch_id
    if with_counts:
        out["counts"] = counts(platform, up)
    return out


def list_uploads(
    platform: Platform, team_id: str, kind: str | None, limit: int, offset: int
) -> tuple[list[Upload], int]:
    if kind is not None and kind not in KINDS:
        raise bad_request(f"kind must be one of {', '.join(KINDS)}", "kind")
    now = utcnow()
    with platform.db.read_session() as s:
        q = select(Upload).where(Upload.team_id == team_id, Upload.expires_at > now)
        if kind:
            q = q.where(Upload.kind == kind)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = list(s.scalars(q.order_by(Upload.created_at.desc(), Upload.id.desc()).offset(offset).limit(limit)))
        for r in rows:
            s.expunge(r)
    return rows, int(total)


def results_of(platform: Platform, up: Upload) -> dict[str, StoredResult]:
    """Stored results of the upload's completed jobs, by job id."""
    ids = [j.id for j, _ in upload_jobs(platform, up)]
    out: dict[str, StoredResult] = {}
    with platform.db.read_session() as s:
        for start in range(0, len(ids), 500):
            for r in s.scalars(select(StoredResult).where(StoredResult.id.in_(ids[start : start + 500]))):
                s.expunge(r)
                out[r.id] = r
    return out


def sweep_uploads(db: Any, storage: Any, now: Any) -> int:
    from sqlalchemy import delete

    with db.session() as s:
        res = s.execute(delete(Upload).where(Upload.expires_at <= now))
        return int(getattr(res, "rowcount", 0) or 0)


register_sweeper(sweep_uploads)
