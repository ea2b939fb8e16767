"""The routing layer (canonical paths and their aliases) and how the OpenAPI document is produced."""

from __future__ import annotations

import pytest

from sleuth.api.routing import DEEPFAKE, PLATFORM, WILDLIFE, canonical_path, family_for_path, split_alias


@pytest.mark.parametrize(
    "path, canonical, prefix",
    [
        ("/detect", "/detect", None),
        ("/api/v2/detect", "/detect", "/api/v2"),
        ("/v2/detect/batch/abc", "/detect/batch/abc", "/v2"),
        ("/api/v1/batch-detect", "/v1/batch-detect", "/api"),
        ("/v1/batch-detect", "/v1/batch-detect", None),
        ("/api/v2x/detect", "/v2x/detect", "/api"),  # only a whole path segment counts
        ("/v2", "/v2", None),
    ],
)
def test_split_alias(path, canonical, prefix):
    assert split_alias(path) == (canonical, prefix)
    assert canonical_path(path) == canonical


def test_family_for_path():
    assert family_for_path("/api/v2/detect") is DEEPFAKE
    assert family_for_path("/detect/batch") is DEEPFAKE
    assert family_for_path("/v1/usage") is WILDLIFE
    assert family_for_path("/api/v1/jobs") is WILDLIFE
    assert family_for_path("/healthz") is PLATFORM


def test_aliases_run_the_same_handlers_with_the_same_auth(client, team_key):
    _team, auth = team_key
    for path in ("/v1/usage", "/api/v1/usage"):
        assert client.get(path).status_code == 401
        r = client.get(path, headers=auth)
        assert r.status_code == 200, r.text
        assert "X-RateLimit-Limit" in r.headers
    listed = [client.get(p, headers=auth) for p in ("/detect", "/api/v2/detect", "/v2/detect")]
    assert [r.status_code for r in listed] == [200, 200, 200]
    assert listed[0].json() == listed[1].json() == listed[2].json()
    assert client.get("/api/v2/healthz").status_code == 404  # probes have no aliases


def test_each_family_has_its_error_envelope(client, team_key):
    _team, auth = team_key
    wild = client.get("/api/v1/detect/not-a-uuid", headers=auth)
    assert wild.status_code == 400
    assert "item" not in wild.json() and wild.json()["error"]["code"] == "invalid_id"
    fake = client.get("/api/v2/detect/00000000-0000-0000-0000-000000000000", headers=auth)
    assert fake.status_code == 404
    body = fake.json()
    assert body["success"] is False and body["item"] is None and body["error"]["status"] == 404
    # an unknown path is answered in the envelope of the family its prefix names
    assert client.get("/v2/nothing-here").json()["item"] is None


def test_body_limits_apply_to_aliases(client, team_key):
    _team, auth = team_key
    # a JSON /detect body only carries a url and options: 1 MB, under every name
    big = b'{"url": "' + b"a" * 1_100_000 + b'"}'
    for path in ("/detect", "/api/v2/detect", "/v2/detect"):
        r = client.post(path, content=big, headers=auth | {"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert r.json()["error"]["limit_bytes"] == 1_000_000
        assert r.json()["item"] is None


def test_openapi_marks_aliases_and_has_no_undeclared_422(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for alias, canonical in (("/api/v2/detect", "/detect"), ("/v2/detect/batch", "/detect/batch")):
        for method, op in paths[alias].items():
            assert op["x-alias-of"] == canonical
            assert op["tags"] == ["aliases"]
            assert op["operationId"] != paths[canonical][method]["operationId"]
    assert paths["/api/v1/batch-detect"]["post"]["x-alias-of"] == "/v1/batch-detect"
    assert "x-alias-of" not in paths["/v1/batch-detect"]["post"]
    for path, item in paths.items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["DeepfakeError"]["properties"]["item"]["type"] == "null"
    assert "item" not in schemas["WildlifeError"]["properties"]


# the paths the vendors' clients build: Resemble's Node SDK calls `<base>v2/<path>` with a base ending in `/api/`
# (its default) or not; Animal Detect's docs show `/api/v1/...` beside `/v1/...`
SDK_CALLS = [("post", "secure_uploads"), ("post", "detect"), ("get", "detect/{uuid}")]


def test_every_path_the_clients_call_is_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    for base in ("/api/", "/"):
        for method, path in SDK_CALLS:
            assert method in paths.get(f"{base}v2/{path}", {}), (method, base, path)
    for path in ("batch-detect", "detect", "detect-url", "detect/{result_id}", "usage", "jobs", "jobs/{job_id}"):
        assert f"/api/v1/{path}" in paths and f"/v1/{path}" in paths, path


def test_openapi_declares_both_auth_schemes_on_every_authenticated_operation(client):
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["token"]["type"] == "apiKey" and schemes["token"]["in"] == "header"
    assert schemes["token"]["name"] == "Authorization" and "Token token=" in schemes["token"]["description"]
    secured = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = [p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"]
            assert "authorization" not in params, (method, path)
            if path in ("/healthz", "/readyz") or path.endswith("/v1/uploads/{job_id}"):
                assert "security" not in op, (method, path)  # probes and signed upload URLs take no key
            else:
                assert op["security"] == [{"bearer": []}, {"token": []}], (method, path)
                secured += 1
    assert secured >= 50


def test_secure_uploads_openapi_entry(client):
    paths = client.get("/openapi.json").json()["paths"]
    op = paths["/secure_uploads"]["post"]
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"] and schema["properties"]["file"]["format"] == "binary"
    assert set(op["responses"]) == {"200", "400", "401", "413", "429"}
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"success", "token", "expires_at"} <= set(ok["required"])
    assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeepfakeError"
    }
    for alias in ("/api/v2/secure_uploads", "/v2/secure_uploads"):
        assert paths[alias]["post"]["x-alias-of"] == "/secure_uploads"
        assert paths[alias]["post"]["requestBody"] == op["requestBody"]
