"""``sleuth webhooks secret TEAM [--rotate]``: the secret the API route gives, through the same service code;
a refused private callback URL names SLEUTH_URL_ALLOW_PRIVATE."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.mark.db
def test_secret_and_rotate_agree_with_the_route(client, settings):
    from sleuth.cli import app as cli

    runner = CliRunner()
    key = runner.invoke(cli, ["keys", "create", "--team", "acme", "--create-team"]).stdout.strip().splitlines()[0]
    auth = {"Authorization": f"Bearer {key}"}
    r = runner.invoke(cli, ["webhooks", "secret", "acme"])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip()
    assert secret.startswith("whsec_")
    assert client.get("/v1/team/webhook-secret", headers=auth).json()["webhook_secret"] == secret
    r = runner.invoke(cli, ["webhooks", "secret", "acme", "--rotate"])
    assert r.exit_code == 0, r.output
    new = r.stdout.strip()
    assert new.startswith("whsec_") and new != secret
    assert client.get("/v1/team/webhook-secret", headers=auth).json()["webhook_secret"] == new
    team_id = client.get("/v1/me", headers=auth).json()["team_id"]
    assert runner.invoke(cli, ["webhooks", "secret", team_id]).stdout.strip() == new  # by id too
    r = runner.invoke(cli, ["webhooks", "secret", "nope"])
    assert r.exit_code == 1 and "nope" in r.output


def test_private_callback_refusal_names_the_setting():
    from sleuth.platform.ssrf import BlockedURL, check_url

    with pytest.raises(BlockedURL, match="SLEUTH_URL_ALLOW_PRIVATE=127.0.0.1"):
        check_url("http://127.0.0.1:8080/hook", set(), "callback_url")
