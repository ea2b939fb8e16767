"""Wildlife API (Animal Detect–compatible): detect, batch-detect, urban, filter, detect-url, results,
countries/species, models."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sleuth.api import routing
from sleuth.api.contract import wildlife as doc
from sleuth.api.deps import Inference, PlatformDep, Reference, json_object
from sleuth.api.openapi import responses
from sleuth.db.models import StoredResult, utcnow
from sleuth.engine.batcher import QueueFullError
from sleuth.pipelines import geo
from sleuth.pipelines.wildlife import ImageOptions
from sleuth.platform import credits
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.platform.ssrf import allow_hosts_from, fetch
from sleuth.services import wildlife as svc

router = APIRouter(tags=["wildlife"])
MAX_IMAGES = doc.MAX_IMAGES
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
IMAGE_SIGNATURES = (b"\xff\xd8", b"\x89PNG", b"RIFF", b"BM")


@dataclass
class Parsed:
    images: list[svc.ImageInput]
    options: ImageOptions
    metadata: bool
    country_input: str | None
    extra: dict[str, Any]


def _bool(fields: dict[str, Any], name: str, default: bool) -> bool:
    v = fields.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise bad_request(f"{name} must be true or false", name)


def _number(fields: dict[str, Any], name: str) -> float | None:
    v = fields.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise bad_request(f"{name} must be a number", name)
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        raise bad_request(f"{name} must be a number", name) from None
    if f != f or f in (float("inf"), float("-inf")):
        raise bad_request(f"{name} must be a finite number", name)
    return f


def parse_options(fields: dict[str, Any]) -> tuple[ImageOptions, bool, str | None]:
    """Validate Animal Detect's parameters (400 with the field for anything wrong)."""
    threshold = _number(fields, "threshold")
    if threshold is None:
        threshold = 0.2
    if not 0.01 <= threshold <= 0.99:
        raise bad_request("threshold must be between 0.01 and 0.99", "threshold", "invalid_threshold")
    classify = _bool(fields, "classify", True)
    smooth_herd = _bool(fields, "smooth_herd", False)
    metadata = _bool(fields, "metadata", False)
    country_raw = fields.get("country")
    country = None
    if country_raw not in (None, ""):
        try:
            country = geo.resolve_country(str(country_raw))
        except ValueError as e:
            raise bad_request(str(e), "country", "invalid_country") from None
    lat, lon = _number(fields, "latitude"), _number(fields, "longitude")
    admin1 = None
    if (lat is None) != (lon is None):
        missing = "longitude" if lon is None else "latitude"
        raise bad_request("latitude and longitude must be sent together", missing)
    if lat is not None and lon is not None:
        if country is None:
            raise bad_request("latitude/longitude are an area hint inside a country: send country too", "country")
        try:
            geo.validate_lat_lon(lat, lon)
        except ValueError as e:
            raise bad_request(str(e), "latitude") from None
        admin1 = geo.admin1_for(country, lat, lon)
    top = fields.get("top_candidate")
    top_candidate = None
    if top not in (None, ""):
        try:
            top_candidate = int(str(top))
        except ValueError:
            raise bad_request("top_candidate must be an integer from 1 to 10", "top_candidate") from None
        if not 1 <= top_candidate <= 10:
            raise bad_request("top_candidate must be an integer from 1 to 10", "top_candidate")
        if not classify:
            raise bad_request("top_candidate needs classify=true", "top_candidate")
    try:
        opts = ImageOptions(
            threshold=threshold,
            classify=classify,
            country=country,
            admin1=admin1,
            smooth_herd=smooth_herd,
            top_candidate=top_candidate,
        )
    except ValueError as e:
        raise bad_request(str(e)) from None
    return opts, metadata, (str(country_raw) if country_raw not in (None, "") else None)


def _b64_image(value: Any, index: int, field_name: str) -> svc.ImageInput:
    filename = f"image_{index}"
    if isinstance(value, dict):
        filename = str(value.get("filename") or filename)
        value = value.get("data") or value.get("image") or value.get("base64")
    if not isinstance(value, str) or not value:
        raise bad_request(f"{field_name}[{index}] must be a base64 string", field_name)
    if value.startswith("data:"):
        head, _, value = value.partition(",")
        ext = head.split("/")[-1].split(";")[0]
        filename = filename if "." in filename else f"{filename}.{ext}"
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{field_name}[{index}] is not valid base64", field_name, "invalid_base64") from None
    return svc.ImageInput(filename=filename, data=data)


async def parse_request(request: Request, *, single: bool, platform: Platform) -> Parsed:
    field_name = "image" if single else "images"
    ctype = request.headers.get("content-type", "")
    images: list[svc.ImageInput] = []
    if ctype.startswith("application/json"):
        body = await json_object(request)
        raw = body.get(field_name)
        if single:
            raw = [raw] if raw is not None else []
        elif raw is not None and not isinstance(raw, list):
            raise bad_request("images must be an array of base64 strings", "images")
        images = [_b64_image(v, i, field_name) for i, v in enumerate(raw or [])]
        fields = body
    elif ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form(max_files=MAX_IMAGES + 1)
        fields = {}
        for k, v in form.multi_items():
            if isinstance(v, UploadFile):
                if k not in ("image", "images", "images[]"):
                    raise bad_request(f"Unexpected file field {k!r}; send {field_name}", k)
                images.append(svc.ImageInput(filename=v.filename or f"image_{len(images)}", data=await v.read()))
            elif k in fields:
                raise bad_request(f"{k} was sent more than once; send each option once", k, "repeated_field")
            else:
                fields[k] = v
    else:
        raise SleuthError(415, "unsupported_media_type", "Send multipart/form-data or application/json")
    if not images:
        raise bad_request(f"No {field_name} provided", field_name, "missing_image")
    if single and len(images) > 1:
        raise bad_request("This endpoint takes exactly one image; use /v1/batch-detect", "image")
    if len(images) > MAX_IMAGES:
        raise bad_request(f"At most {MAX_IMAGES} images per batch", "images", "too_many_images")
    total = sum(len(i.data) for i in images)
    budget = int(platform.settings.max_raw_images_mb * 1_000_000)
    if total > budget:
        raise SleuthError(
            413,
            "payload_too_large",
            f"Combined raw image data is {total} bytes; the budget is {budget} bytes",
            field_name,
        )
    options, metadata, country_input = parse_options(fields)
    return Parsed(images, options, metadata, country_input, {})


def _run(
    platform: Platform,
    team_id: str,
    parsed: Parsed,
    profile: svc.Profile,
    *,
    detector_only: bool,
    endpoint: str,
    single: bool,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    n = len(parsed.images)
    reservation = credits.reserve(
        platform.db, team_id, n, endpoint, [{"filename": i.filename, "cost": 1} for i in parsed.images]
    )
    t0 = time.perf_counter()
    try:
        outcomes = svc.run_images(
            parsed.images, parsed.options, profile, lane="interactive", detector_only=detector_only
        )
    except QueueFullError as e:
        credits.refund(platform.db, reservation)
        raise SleuthError(
            503, "overloaded", "The inference queue is full; retry shortly", headers={"Retry-After": "2"}
        ) from e
    except BaseException:
        credits.refund(platform.db, reservation)
        raise
    total_ms = int(round((time.perf_counter() - t0) * 1000))
    ok = sum(1 for o in outcomes if o.ok)
    credits.settle(platform.db, reservation, ok, endpoint)
    if single and not outcomes[0].ok:
        code, msg = outcomes[0].error  # type: ignore[misc]
        raise bad_request(msg, "image", code)
    now = utcnow()
    rid = str(uuid.uuid4())
    expires = now + timedelta(days=platform.settings.result_ttl_days)
    opts = parsed.options
    if single:
        o = outcomes[0]
        payload: dict[str, Any] = {"id": rid, "expires_at": _iso(expires)}
        payload.update(
            {
                k: v
                for k, v in svc.result_item(
                    o, profile, opts, metadata=parsed.metadata, detector_only=detector_only
                ).items()
                if k not in ("index", "filename", "info")
            }
        )
        payload["info"] = svc.item_info(o, profile, opts) | {"country_processed": opts.country}
    else:
        payload = {
            "id": rid,
            "expires_at": _iso(expires),
            "results": [
                svc.result_item(o, profile, opts, metadata=parsed.metadata, detector_only=detector_only)
                for o in outcomes
            ],
            "info": {
                "total_processed": ok,
                "total_failed": n - ok,
                "total_time_ms": total_ms,
                "model_version": profile.model_version,
                "model_id": profile.model_id,
                "country_processed": opts.country,
                "threshold_applied": opts.threshold,
            },
        }
    if opts.admin1:
        payload["info"]["admin1_processed"] = opts.admin1
    if extra_info:
        payload["info"].update(extra_info)
    with platform.db.session() as s:
        s.add(
            StoredResult(
                id=rid,
                team_id=team_id,
                endpoint=endpoint,
                status="success",
                payload=payload,
                created_at=now,
                completed_at=utcnow(),
                expires_at=expires,
            )
        )
    return payload


def _iso(dt: Any) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _profile(name: str, detector_only: bool) -> svc.Profile:
    return svc.resolve_profile(name, detector_only)


def _endpoint(path: str, *, single: bool, profile: str, detector_only: bool = False, summary: str = "") -> None:
    async def handler(request: Request, principal: Inference, platform: PlatformDep) -> Any:
        parsed = await parse_request(request, single=single, platform=platform)
        return await run_in_threadpool(
            _run,
            platform,
            principal.team_id,
            parsed,
            _profile(profile, detector_only),
            detector_only=detector_only,
            endpoint=path,
            single=single,
        )

    handler.__name__ = "post_" + path.strip("/").replace("/", "_").replace("-", "_")
    router.add_api_route(
        path,
        handler,
        methods=["POST"],
        summary=summary,
        openapi_extra=doc.upload_body(single=single),
        responses=responses(routing.WILDLIFE, {200: doc.SINGLE if single else doc.BATCH}, 402, 415, 503),
    )


_endpoint("/v1/detect", single=True, profile="default", summary="Detect animals, people and vehicles in one image")
_endpoint("/v1/batch-detect", single=False, profile="default", summary="Detect in 1-10 images")
_endpoint("/v1/detect-urban", single=True, profile="urban", summary="Detect in one urban/indoor/farm image")
_endpoint("/v1/batch-detect-urban", single=False, profile="urban", summary="Urban profile, 1-10 images")
_endpoint(
    "/v1/batch-filter",
    single=False,
    profile="default",
    detector_only=True,
    summary="Detector only: flag images with an animal, human or vehicle",
)
_endpoint(
    "/v1/batch-filter-urban", single=False, profile="urban", detector_only=True, summary="Detector only, urban profile"
)


@router.post(
    "/v1/detect-url",
    summary="Detect in one image fetched from a public URL",
    openapi_extra=doc.DETECT_URL_BODY,
    responses=responses(routing.WILDLIFE, {200: doc.SINGLE}, 402, 415, 503),
)
async def detect_url(request: Request, principal: Inference, platform: PlatformDep) -> Any:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise SleuthError(415, "unsupported_media_type", "Send application/json with a url")
    body = await json_object(request)
    if not isinstance(body.get("url"), str) or not body["url"]:
        raise bad_request("url is required", "url")
    url = body["url"]
    options, metadata, country_input = parse_options(body)
    s = platform.settings
    fetched = await run_in_threadpool(
        fetch,
        url,
        max_bytes=int(s.max_raw_images_mb * 1_000_000),
        timeout=s.url_fetch_timeout_s,
        allow_hosts=allow_hosts_from(s.url_allow_private),
    )
    name = url.rsplit("/", 1)[-1].split("?")[0] or "image"
    parsed = Parsed([svc.ImageInput(name, fetched.content)], options, metadata, country_input, {})
    return await run_in_threadpool(
        _run,
        platform,
        principal.team_id,
        parsed,
        svc.resolve_profile("default"),
        detector_only=False,
        endpoint="/v1/detect-url",
        single=True,
        extra_info={"source_url": url},
    )


@router.get(
    "/v1/detect/{result_id}",
    summary="Reload a stored result (until it expires); an async job's id answers 202 while it is pending",
    responses=responses(routing.WILDLIFE, {200: doc.STORED_RESULT, 202: doc.PENDING}, 400, 404),
)
async def get_result(result_id: str, principal: Reference, platform: PlatformDep) -> Any:
    try:
        uuid.UUID(result_id)
    except ValueError:
        raise bad_request("Invalid result id", "id", "invalid_id") from None
    try:
        return await run_in_threadpool(load_result, platform, principal.team_id, result_id)
    except SleuthError as e:
        if e.status != 404:
            raise
        # an async job's id: 202 while it is pending, the error payload if it failed
        from sleuth.services import wildlife_jobs as wj

        try:
            job, item = await run_in_threadpool(wj.get_job, platform, principal.team_id, result_id)
        except SleuthError:
            raise e from None
        st = wj.status_of(job)
        if st in ("awaiting_upload", "queued", "processing"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"id": job.id, "status": st}, status_code=202)
        if st == "failed":
            return {"id": job.id, "status": "error", "error": {"code": "processing_failed", "message": item.error}}
        raise


def load_result(platform: Platform, team_id: str, result_id: str) -> Any:
    with platform.db.read_session() as s:
        row = s.get(StoredResult, result_id)
        if row is None or row.team_id != team_id or row.expires_at <= utcnow():
            raise SleuthError(404, "not_found", "Result not found or expired")
        out = dict(row.payload)
        out.update(
            status=row.status,
            endpoint=row.endpoint,
            created_at=_iso(row.created_at),
            completed_at=_iso(row.completed_at) if row.completed_at else None,
        )
        return out


@router.get(
    "/v1/countries/{code}/species",
    summary="Species the classifier pack allows in a country",
    responses=responses(routing.WILDLIFE, {200: doc.SPECIES}, 404),
)
async def country_species(
    code: str,
    principal: Reference,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    try:
        cca3 = geo.resolve_country(code)
    except ValueError:
        raise SleuthError(404, "country_not_supported", "Country code not supported", "code") from None
    pack = await run_in_threadpool(svc.classifier_pack, "coral")  # the configured classifier
    from sleuth.pipelines.wildlife import NoRangeData, species_for_country

    try:
        page = species_for_country(
            getattr(pack, "geofence", None) if pack.has_range_data else None,
            pack.labels,
            cca3,
            limit=limit,
            offset=offset,
        )
    except NoRangeData as e:
        raise SleuthError(
            404,
            "no_range_data",
            f"The installed classifier ({pack.model_id or 'the Coral stand-in'}) has no species range data, so "
            f"sleuth cannot list species for {cca3}; install SpeciesNet, whose geofence has it: "
            "`sleuth models pull speciesnet-4.0.3a` (or `sleuth models import PATH`), then set "
            "SLEUTH_CLASSIFIER_PACK=speciesnet-4.0.3a",
            "code",
        ) from e
    return page


@router.get(
    "/v1/models",
    summary="Detection profiles and the models they run",
    responses=responses(routing.WILDLIFE, {200: doc.MODELS}),
)
async def list_models(principal: Reference) -> Any:
    return await run_in_threadpool(_models)


def _models() -> dict[str, Any]:
    out = []
    for p in svc.PROFILES.values():
        for prof, endpoints in ((svc.resolve_profile(p.name), "detect"), (svc.resolve_profile(p.name, True), "filter")):
            out.append(
                {
                    "model_id": prof.model_id,
                    "model_version": prof.model_version,
                    "profile": p.name,
                    "kind": endpoints,
                    "detector": prof.detector,
                    "relabeler": prof.relabeler,
                    "classifier": prof.classifier,
                    "description": prof.description,
                }
            )
    from sleuth.services.model_selection import installed_models

    return {"models": out, "installed": installed_models()}


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
