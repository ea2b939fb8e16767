"""Both ways the vendors' clients send a key authenticate, on every route: ``Bearer <key>`` and
``Token token=<key>`` (Resemble's Node SDK)."""

from __future__ import annotations

import re

import pytest

from sleuth.platform.auth import key_from_header

FORMS = [
    "Bearer {k}",
    "bearer {k}",
    "Token token={k}",
    'Token token="{k}"',
    "token Token={k}, realm=x",
    "TOKEN   token={k}",
    "Token {k}",
]
BAD = ["Basic abc", "Bearer", "Bearer a b", "Token", "Token token=", "Token foo=bar", "Token token=a b", "Digest x"]


@pytest.mark.parametrize("form", FORMS)
def test_key_from_header_reads_both_schemes(form):
    assert key_from_header(form.format(k="sk_sleuth_abc-_1")) == "sk_sleuth_abc-_1"


@pytest.mark.parametrize("header", BAD)
def test_other_forms_are_401_invalid_authorization(client, header):
    r = client.get("/detect", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_authorization", header
    assert "Token token=" in r.json()["message"] and r.json()["item"] is None


def test_token_scheme_with_unknown_or_revoked_key(client, team_key):
    from sleuth.platform.auth import create_key, revoke_key

    assert (
        client.get("/v1/usage", headers={"Authorization": "Token token=sk_sleuth_nope"}).json()["error"]["code"]
        == "invalid_api_key"
    )
    team, _auth = team_key
    db = client.app.state.platform.db
    k = create_key(db, team)
    revoke_key(db, k.id)
    r = client.get("/api/v2/detect", headers={"Authorization": f"Token token={k.key}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path).replace(
        "countries/00000000-0000-0000-0000-000000000000", "countries/USA"
    )


def test_every_authenticated_route_takes_either_scheme(client, team_key):
    from sleuth.api.openapi import requires_api_key
    from sleuth.api.routing import api_routes

    _team, auth = team_key
    key = auth["Authorization"].split(" ", 1)[1]
    checked = 0
    for route, path, _prefix in api_routes(client.app):
        if not requires_api_key(route):
            continue
        for method in route.methods:
            url = _fill(path)
            anon = client.request(method, url)
            assert anon.status_code == 401, (method, path, anon.text)
            for header in (f"Bearer {key}", f"Token token={key}"):
                r = client.request(method, url, headers={"Authorization": header})
                # authenticated: whatever the handler answers next (400 for an empty body, 404 for a dummy id)
                assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, header, r.text)
            checked += 1
    assert checked >= 50  # every family, canonical paths and aliases
