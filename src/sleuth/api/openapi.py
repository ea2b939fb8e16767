"""How ``/openapi.json`` is produced.

FastAPI describes what it parses itself (path and query parameters, pydantic bodies). sleuth parses most bodies by
hand (multipart with repeated files, JSON or multipart on one route, streamed uploads), so each operation declares
the rest next to its route:

- ``openapi_extra=request_body(multipart(...), json_content(...))``: the request body, every field with its type
  and limits;
- ``responses=responses(family, {200: schema}, 404, 409, ...)``: every status code the operation returns, the
  errors with their family's envelope. The statuses the shared machinery answers (401/429 for an API key, 400 for
  a parameter or body, 413 for a body: :func:`implied_statuses`) are added to every operation they apply to.

An operation whose dependencies authenticate an API key (:func:`sleuth.api.deps.require` marks them with
:data:`AUTH_ATTR`) gets ``security`` with both schemes sleuth accepts, ``Authorization: Bearer <key>`` and
``Authorization: Token token=<key>`` (Resemble's Node SDK), instead of a plain ``authorization`` header parameter.

:func:`install` then post-processes FastAPI's document: it removes the 422 that FastAPI adds to every operation with
parameters (sleuth answers validation errors with 400) unless an operation declares it, adds the error envelopes
and security schemes as components, and marks each alias (see :mod:`sleuth.api.routing`) with ``x-alias-of`` and the
``aliases`` tag (FastAPI already gives it an operation id of its own).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from sleuth.api.routing import ALIAS_TAG, DEEPFAKE, PLATFORM, WILDLIFE, Family, api_routes, family_for_path

Schema = dict[str, Any]

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Invalid request: a parameter or the body is wrong; `error.field` names it",
    401: "Missing, malformed, unknown or revoked API key",
    402: "Not enough credits",
    403: "Forbidden",
    404: "Not found, expired, or another team's",
    409: "Conflict with the resource's state",
    410: "Gone: expired",
    413: "Request body or file over its size limit",
    415: "Unsupported content type",
    422: "Unprocessable",
    429: "Rate limit exceeded; see `Retry-After`",
    500: "Internal error",
    503: "Overloaded or unavailable; see `Retry-After`",
}


def _error_detail() -> Schema:
    return {
        "type": "object",
        "required": ["status", "code", "message"],
        "properties": {
            "status": {"type": "integer", "description": "The HTTP status"},
            "code": {"type": "string", "description": "Machine-readable code, e.g. `invalid_threshold`"},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "The offending parameter or body field, when there is one"},
        },
        "additionalProperties": True,
    }


def envelope_name(family: Family) -> str:
    return {WILDLIFE.name: "WildlifeError", DEEPFAKE.name: "DeepfakeError"}.get(family.name, "Error")


def envelope_schemas() -> dict[str, Schema]:
    """The error envelopes as OpenAPI components (they must match :func:`sleuth.api.errors.envelope`)."""
    base: Schema = {
        "type": "object",
        "required": ["success", "message", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "message": {"type": "string"},
            "error": {"$ref": "#/components/schemas/ErrorDetail"},
        },
    }
    deepfake = copy.deepcopy(base)
    deepfake["required"].append("item")
    deepfake["properties"]["item"] = {"type": "null", "description": "Always null on an error, as in Resemble's"}
    return {
        "ErrorDetail": _error_detail(),
        "Error": copy.deepcopy(base),
        "WildlifeError": copy.deepcopy(base),
        "DeepfakeError": deepfake,
    }


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def responses(family: Family, ok: Mapping[int, Schema | None] | None = None, *errors: int) -> dict[int | str, Any]:
    """``responses=`` for a route: success bodies by status, then the error statuses it can return."""
    out: dict[int | str, Any] = {}
    for status, schema in (ok or {}).items():
        entry: dict[str, Any] = {"description": STATUS_TEXT.get(status, "OK")}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        out[status] = entry
    for status in errors:
        out[status] = {
            "description": STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": ref(envelope_name(family))}},
        }
    return out


# --- request bodies ---------------------------------------------------------------------------------------------


def string(description: str = "", **kw: Any) -> Schema:
    return {"type": "string", "description": description, **kw}


def _bounded(kind: str, description: str, minimum: float | None, maximum: float | None, **kw: Any) -> Schema:
    s: Schema = {"type": kind, "description": description, **kw}
    if minimum is not None:
        s["minimum"] = minimum
    if maximum is not None:
        s["maximum"] = maximum
    return s


def integer(description: str = "", minimum: int | None = None, maximum: int | None = None, **kw: Any) -> Schema:
    return _bounded("integer", description, minimum, maximum, **kw)


def number(description: str = "", minimum: float | None = None, maximum: float | None = None, **kw: Any) -> Schema:
    return _bounded("number", description, minimum, maximum, **kw)


def boolean(description: str = "", default: bool | None = None, **kw: Any) -> Schema:
    s: Schema = {"type": "boolean", "description": description, **kw}
    if default is not None:
        s["default"] = default
    return s


def binary(description: str = "", max_bytes: int | None = None) -> Schema:
    s: Schema = {"type": "string", "format": "binary", "description": description}
    if max_bytes is not None:
        s["maxLength"] = max_bytes
    return s


def array(items: Schema, description: str = "", min_items: int | None = None, max_items: int | None = None) -> Schema:
    s: Schema = {"type": "array", "items": items, "description": description}
    if min_items is not None:
        s["minItems"] = min_items
    if max_items is not None:
        s["maxItems"] = max_items
    return s


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] | list[str] = (), **kw: Any) -> Schema:
    s: Schema = {"type": "object", "properties": dict(properties), **kw}
    if required:
        s["required"] = list(required)
    return s


def nullable(schema: Schema) -> Schema:
    """``schema`` that also admits null (OpenAPI 3.1: a type list)."""
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, str):
        out["type"] = [t, "null"]
    elif "type" not in out:
        out = {"anyOf": [schema, {"type": "null"}]}
    return out


def or_empty(schema: Schema) -> Schema:
    """An option that also takes an empty value or null, meaning "not sent" (HTML forms send empty fields)."""
    return {
        "anyOf": [schema, {"type": "string", "maxLength": 0}, {"type": "null"}],
        "description": (schema.get("description") or "") + " (empty: the default)",
    }


def multipart(properties: Mapping[str, Schema], required: tuple[str, ...] | list[str] = ()) -> dict[str, Schema]:
    return {"multipart/form-data": {"schema": obj(properties, required)}}


def json_content(schema: Schema) -> dict[str, Schema]:
    return {"application/json": {"schema": schema}}


def raw_content(media_types: list[str], description: str = "", max_bytes: int | None = None) -> dict[str, Schema]:
    return {m: {"schema": binary(description, max_bytes)} for m in media_types}


def request_body(*contents: Mapping[str, Schema], required: bool = True, description: str = "") -> dict[str, Any]:
    """``openapi_extra=`` for a route whose body sleuth parses itself (one media type per ``contents`` entry)."""
    content: dict[str, Any] = {}
    for c in contents:
        content.update(c)
    body: dict[str, Any] = {"required": required, "content": content}
    if description:
        body["description"] = description
    return {"requestBody": body}


# --- security -------------------------------------------------------------------------------------------------

AUTH_ATTR = "sleuth_requires_api_key"  # set on a dependency callable that authenticates an API key

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <API key>`"},
    "token": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Token token=<API key>` (the value is the whole header: `Token token=` and "
        "the key), the form Resemble's Node SDK sends. Either scheme authenticates on every route.",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"token": []}]


def _uses(dependant: Dependant, attr: str) -> bool:
    return any(getattr(d.call, attr, False) or _uses(d, attr) for d in dependant.dependencies)


def requires_api_key(route: APIRoute) -> bool:
    return _uses(route.dependant, AUTH_ATTR)


def _apply_security(doc: dict[str, Any], app: FastAPI) -> None:
    for route, path, _prefix in api_routes(app):
        if not requires_api_key(route):
            continue
        for method in route.methods or ():
            op = doc.get("paths", {}).get(path, {}).get(method.lower())
            if op is None:
                continue
            op["security"] = copy.deepcopy(SECURITY)
            params = [
                p
                for p in op.get("parameters", [])
                if not (p.get("in") == "header" and p["name"].lower() == "authorization")
            ]
            if params:
                op["parameters"] = params
            else:
                op.pop("parameters", None)


# --- the document -----------------------------------------------------------------------------------------------

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _declared(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for route, path, _prefix in api_routes(app):
        for m in route.methods or ():
            out[(path, m.lower())] = {str(k) for k in route.responses}
    return out


def _aliases(app: FastAPI) -> dict[str, str]:
    return {path: route.path for route, path, prefix in api_routes(app) if prefix is not None}


def _drop_undeclared_422(doc: dict[str, Any], declared: dict[tuple[str, str], set[str]]) -> None:
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op and "422" in op.get("responses", {}) and "422" not in declared.get((path, method), set()):
                del op["responses"]["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    text = repr(doc.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}'" not in text:
            del schemas[name]


def _mark_aliases(doc: dict[str, Any], aliases: Mapping[str, str]) -> None:
    for path, item in doc.get("paths", {}).items():
        canonical = aliases.get(path)
        if canonical is None:
            continue
        for method in _METHODS:
            op = item.get(method)
            if not op:
                continue
            op["x-alias-of"] = canonical
            op["tags"] = [ALIAS_TAG]
            op["summary"] = f"{op.get('summary') or method.upper()} (alias of {method.upper()} {canonical})"


def implied_statuses(op: Mapping[str, Any]) -> set[int]:
    """What the shared machinery answers on an operation, whatever its handler does.

    - an API key (``security``): 401 (missing, malformed, unknown, revoked) and 429 (its rate limit);
    - any parameter or body: 400 (FastAPI's validation, answered as 400 by :mod:`sleuth.api.errors`);
    - a body: 413 (:class:`sleuth.api.limits.BodyLimitMiddleware`).
    """
    out: set[int] = set()
    if op.get("security"):
        out |= {401, 429}
    if op.get("parameters") or "requestBody" in op:
        out.add(400)
    if "requestBody" in op:
        out.add(413)
    return out


def _add_implied(doc: dict[str, Any]) -> None:
    for path, item in doc.get("paths", {}).items():
        family = family_for_path(path)
        for method in _METHODS:
            op = item.get(method)
            if not op:
                continue
            out = op.setdefault("responses", {})
            for entry in out.values():
                # FastAPI adds its default JSON body to a 2xx that declares other media types (files): drop it
                content = entry.get("content") or {}
                if len(content) > 1 and content.get("application/json", {}).get("schema") == {}:
                    del content["application/json"]
            for status in sorted(implied_statuses(op)):
                out.setdefault(str(status), responses(family, {}, status)[status])
            op["responses"] = dict(sorted(out.items()))


# OpenAPI links: the id an operation returns, and the operations that take it (clients and stateful fuzzers follow
# them). (method, path, status, JSON pointer of the id in the response) -> [(method, path, parameter), ...]
LINKS: dict[tuple[str, str, str, str], list[tuple[str, str, str]]] = {
    ("post", "/detect", "200", "/item/uuid"): [
        ("get", "/detect/{uuid}", "uuid"),
        ("get", "/detect/{uuid}/media", "uuid"),
        ("get", "/detect/{uuid}/visualization", "uuid"),
        ("get", "/detect/{uuid}/timeline", "uuid"),
    ],
    ("post", "/detect/batch", "202", "/item/uuid"): [("get", "/detect/batch/{uuid}", "uuid")],
    ("post", "/v1/jobs", "201", "/id"): [
        ("get", "/v1/jobs/{job_id}", "job_id"),
        ("post", "/v1/jobs/{job_id}/submit", "job_id"),
        ("get", "/v1/jobs/{job_id}/result", "job_id"),
        ("get", "/v1/jobs/{job_id}/image", "job_id"),
    ],
    ("post", "/v1/detect", "200", "/id"): [("get", "/v1/detect/{result_id}", "result_id")],
    ("post", "/v1/batch-detect", "200", "/id"): [("get", "/v1/detect/{result_id}", "result_id")],
    ("post", "/v1/upload-groups", "201", "/id"): [
        ("get", "/v1/upload-groups/{upload_id}", "upload_id"),
        ("get", "/v1/upload-groups/{upload_id}/items", "upload_id"),
    ],
}


def _add_links(doc: dict[str, Any]) -> None:
    paths = doc.get("paths", {})
    for (method, path, status, pointer), targets in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for t_method, t_path, param in targets:
            target = paths.get(t_path, {}).get(t_method)
            if target is None or "operationId" not in target:
                continue
            links[target["operationId"]] = {
                "operationId": target["operationId"],
                "parameters": {param: f"$response.body#{pointer}"},
            }


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    _drop_undeclared_422(doc, _declared(app))
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(envelope_schemas())
    components.setdefault("securitySchemes", {}).update(copy.deepcopy(SECURITY_SCHEMES))
    _apply_security(doc, app)
    _add_implied(doc)
    _add_links(doc)
    _mark_aliases(doc, _aliases(app))
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "DEEPFAKE",
    "PLATFORM",
    "WILDLIFE",
    "array",
    "binary",
    "boolean",
    "build",
    "install",
    "integer",
    "json_content",
    "multipart",
    "nullable",
    "number",
    "or_empty",
    "obj",
    "raw_content",
    "request_body",
    "responses",
    "string",
]
