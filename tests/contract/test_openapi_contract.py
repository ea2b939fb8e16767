"""The OpenAPI document walked route by route, and the parameter bounds and parsing rules the fuzzer relies on."""

from __future__ import annotations

import pytest

from sleuth.api.routing import DEEPFAKE, WILDLIFE, api_routes, family_for_path

METHODS = ("get", "put", "post", "delete", "patch")
# operations that take no request body (everything else that is not a GET must describe one)
BODYLESS = {("post", "/v1/jobs/{job_id}/submit"), ("post", "/v1/team/webhook-secret/rotate")}
ENVELOPE = {WILDLIFE.name: "WildlifeError", DEEPFAKE.name: "DeepfakeError"}


def _ops(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_every_route_is_in_the_document_once_per_path(client):
    doc = client.get("/openapi.json").json()
    served = {(m.lower(), path) for route, path, _p in api_routes(client.app) for m in route.methods or ()}
    documented = {(method, path) for path, method, _op in _ops(doc)}
    assert served == documented


def test_every_operation_describes_its_bodies_statuses_and_envelope(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"Error", "WildlifeError", "DeepfakeError", "ErrorDetail"} <= set(schemas)
    assert "item" in schemas["DeepfakeError"]["required"] and "item" not in schemas["WildlifeError"]["properties"]
    problems = []
    for path, method, op in _ops(doc):
        canonical = op.get("x-alias-of", path)
        where = f"{method.upper()} {path}"
        codes = set(op["responses"])
        if "422" in codes:
            problems.append(f"{where}: 422 (sleuth answers validation errors with 400)")
        ok = [c for c in codes if c.startswith("2")]
        if not ok:
            problems.append(f"{where}: no success response")
        for c in ok:
            content = op["responses"][c].get("content") or {}
            if c != "204" and (not content or any(not v.get("schema") for v in content.values())):
                problems.append(f"{where}: {c} has no body schema")
        envelope = ENVELOPE.get(family_for_path(path).name, "Error")
        for c in codes - set(ok) - ({"503"} if path == "/readyz" else set()):  # readyz: its checks, not an error
            ref = op["responses"][c].get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref != f"#/components/schemas/{envelope}":
                problems.append(f"{where}: {c} is not in the {envelope} envelope ({ref})")
        if op.get("security") and not {"401", "429"} <= codes:
            problems.append(f"{where}: authenticated without 401/429")
        if (op.get("parameters") or op.get("requestBody")) and "400" not in codes:
            problems.append(f"{where}: takes input without declaring 400")
        if method in ("post", "put", "patch") and (method, canonical) not in BODYLESS:
            body = op.get("requestBody")
            if not body or not body.get("content"):
                problems.append(f"{where}: no request body described")
            else:
                for mtype, media in body["content"].items():
                    s = media.get("schema") or {}
                    if mtype.startswith(("multipart/", "application/json")) and not (
                        s.get("properties") or s.get("oneOf") or s.get("anyOf")
                    ):
                        problems.append(f"{where}: {mtype} body without fields")
    assert not problems, "\n".join(problems)


def test_multipart_fields_carry_types_and_limits(client):
    paths = client.get("/openapi.json").json()["paths"]
    wild = paths["/v1/batch-detect"]["post"]["requestBody"]["content"]
    form = wild["multipart/form-data"]["schema"]
    assert form["required"] == ["images"]
    assert form["properties"]["images"]["maxItems"] == 10
    assert form["properties"]["images"]["items"]["format"] == "binary"
    threshold = form["properties"]["threshold"]["anyOf"][0]
    assert (threshold["type"], threshold["minimum"], threshold["maximum"]) == ("number", 0.01, 0.99)
    assert "application/json" in wild
    fake = paths["/detect"]["post"]["requestBody"]["content"]
    assert fake["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert {s["required"][0] for s in fake["application/json"]["schema"]["oneOf"]} == {"url", "media_token"}
    media = paths["/detect/{uuid}/media"]["get"]["responses"]["200"]["content"]
    assert set(media) == {"audio/*", "video/*", "image/*", "application/octet-stream"}


@pytest.mark.parametrize(
    "path, field",
    [
        ("/detect?page=695091022381435648&page_size=21", "page"),
        ("/detect?page=1&page_size=101", "page_size"),
        ("/api/v2/detect?page=100001", "page"),
        ("/v1/countries/US/species?offset=99999999999999999999", "offset"),
        ("/v1/jobs?limit=1000000000000", "limit"),
        ("/v1/upload-groups?offset=1000001", "offset"),
        ("/v1/exports?format=md&gap_seconds=1e308", "gap_seconds"),
        ("/v1/exports?format=md&ids=,", "ids"),
        ("/v1/exports?format=md&ids=not-a-uuid", "ids"),
        ("/v1/results?ids=00000000-0000-0000-0000-000000000000,,", "ids"),
    ],
)
def test_out_of_range_parameters_are_400_naming_the_field(client, team_key, path, field):
    _team, auth = team_key
    r = client.get(path, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert ("item" in r.json()) == path.startswith(("/detect", "/api/v2"))


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"start_region": "1e308"}, "start_region"),
        ({"end_region": "86401"}, "end_region"),
        ({"max_video_secs": "1e300"}, "max_video_secs"),
        ({"frame_length": "9" * 5000}, "frame_length"),
    ],
)
def test_deepfake_numeric_options_are_bounded(client, team_key, fields, field):
    _team, auth = team_key
    r = client.post("/detect", headers=auth, data=fields, files={"file": ("a.wav", b"RIFF", "audio/wav")})
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_wildlife_numeric_options_are_bounded(client, team_key):
    _team, auth = team_key
    for fields, field in (({"top_candidate": "9" * 5000}, "top_candidate"), ({"threshold": "1e400"}, "threshold")):
        r = client.post("/v1/detect", headers=auth, data=fields, files={"image": ("a.jpg", b"\xff\xd8", "image/jpeg")})
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_a_repeated_form_option_is_refused(client, team_key):
    _team, auth = team_key
    body = {"threshold": ["0.3", "0.5"]}
    r = client.post("/v1/batch-detect", headers=auth, data=body, files={"images": ("a.jpg", b"\xff\xd8", "image/jpeg")})
    assert r.status_code == 400 and r.json()["error"] | {"message": ""} == {
        "status": 400,
        "code": "repeated_field",
        "field": "threshold",
        "message": "",
    }
    for path, name in (("/detect", "file"), ("/detect/batch", "files[]")):
        form = {"visualize": ["true", "false"]}
        r = client.post(path, headers=auth, data=form, files={name: ("a.wav", b"RIFF", "audio/wav")})
        assert r.status_code == 400 and r.json()["error"]["field"] == "visualize", (path, r.text)
        assert r.json()["item"] is None


@pytest.mark.parametrize("operation", [["detect"], {"a": 1}, 3, None, True])
def test_jobs_operation_must_be_a_known_string(client, team_key, operation):
    _team, auth = team_key
    body = {"operation": operation, "filename": "a.jpg", "content_type": "image/jpeg"}
    r = client.post("/v1/jobs", headers=auth, json=body)
    assert r.status_code == 400 and r.json()["error"]["field"] == "operation", r.text


def test_bodies_that_are_not_utf8_json_are_400(client, team_key):
    _team, auth = team_key
    for path in ("/v1/jobs", "/v1/reviews", "/v1/upload-groups", "/v1/detect-url"):
        r = client.post(path, headers=auth | {"Content-Type": "application/json"}, content=b"\xe7lT\xff")
        assert r.status_code == 400, (path, r.text)


def test_signed_link_numbers_that_are_not_ascii_digits_are_403_not_500(client, team_key):
    _team, auth = team_key
    job = client.post("/v1/jobs", headers=auth, json={"filename": "a.jpg", "content_type": "image/jpeg"}).json()
    for expires in ("²", "١٢٣", "9" * 25):
        r = client.put(f"/v1/uploads/{job['id']}", params={"expires": expires, "signature": "x"}, content=b"\xff\xd8")
        assert r.status_code in (400, 403), r.text
        r = client.get(f"/detect/{job['id']}/media", params={"expires": expires, "signature": "x"})
        assert r.status_code in (400, 403), r.text
    r = client.get(f"/v1/jobs/{job['id']}/image", headers=auth | {"Range": "bytes=" + "9" * 5000 + "-"})
    assert r.status_code == 404  # not uploaded yet; the range is ignored, never a 500


def test_405_lists_every_method_of_the_path(client):
    r = client.patch("/v1/reviews")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert client.put("/detect/batch").headers["allow"] == "POST"  # a literal path, not /detect/{uuid}
    assert client.delete("/api/v2/detect").headers["allow"] == "GET, POST"


def test_json_numbers_past_float_or_int_limits_are_400(client, team_key):
    _team, auth = team_key
    json_headers = auth | {"Content-Type": "application/json"}
    past_float = b'{"image": "aGVsbG8=", "threshold": 1' + b"0" * 400 + b"}"
    past_int = b'{"image": "aGVsbG8=", "threshold": 1' + b"0" * 5000 + b"}"
    for body, field in ((past_float, "threshold"), (past_int, None)):
        r = client.post("/v1/detect", headers=json_headers, content=body)
        assert r.status_code == 400 and r.json()["error"].get("field") == field, r.text
    big = b'{"name": "x", "deployment": {"name": "pole", "latitude": 1' + b"0" * 400 + b', "longitude": 1}}'
    r = client.post("/v1/upload-groups", headers=json_headers, content=big)
    assert r.status_code == 400 and r.json()["error"]["field"] == "deployment.latitude", r.text


def test_upload_group_optional_fields_take_null_and_coordinates_are_numbers(client, team_key):
    _team, auth = team_key
    dep = {"name": "pole 7", "latitude": None, "longitude": None, "camera_id": None, "country": None}
    body = {"name": None, "deployment": dep, "options": {"threshold": None, "classify": None}}
    r = client.post("/v1/upload-groups", headers=auth, json=body)
    assert r.status_code == 201, r.text
    body["deployment"] = dep | {"latitude": "-1.5", "longitude": "35"}
    r = client.post("/v1/upload-groups", headers=auth, json=body)
    assert r.status_code == 400 and r.json()["error"]["field"] == "deployment.latitude", r.text


def test_json_text_a_database_cannot_hold_is_400(client, team_key):
    """A NUL character (PostgreSQL refuses it in text) or an unpaired surrogate (not UTF-8) anywhere in a JSON body
    is a 400 naming the field, never a 500 (schemathesis found a NUL in batch_uuid giving one on PostgreSQL)."""
    _team, auth = team_key
    json_headers = auth | {"Content-Type": "application/json"}
    cases = [
        ("/v1/upload-groups", b'{"kind": "deepfake", "batch_uuid": "j\\u0000x"}', "batch_uuid"),
        ("/v1/upload-groups", b'{"kind": "deepfake", "name": "a\\udad2b", "batch_uuid": "x"}', "name"),
        ("/v1/reviews", b'{"reviewer": "\\u0000", "result_id": "x"}', "reviewer"),
        ("/v1/jobs", b'{"filename": "a\\u0000.jpg", "content_type": "image/jpeg"}', "filename"),
        ("/v1/jobs", b'{"options": {"x": ["\\ud800"]}, "filename": "a.jpg"}', "options"),
    ]
    for path, body, field in cases:
        r = client.post(path, headers=json_headers, content=body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["field"] == field, (path, r.text)
    body = {"name": "Kruger \U0001f418 pole", "deployment": {"name": "p"}}
    ok = client.post("/v1/upload-groups", headers=auth, json=body)
    assert ok.status_code == 201, ok.text  # real non-ASCII text, emoji included, is fine
