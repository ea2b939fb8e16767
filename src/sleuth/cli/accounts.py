"""``sleuth teams``, ``sleuth keys`` and ``sleuth credits``: accounts, API keys and wallets."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sleuth.cli.common import db as _db
from sleuth.cli.common import fail as _fail
from sleuth.cli.common import typer_app

teams_app = typer_app("Teams (accounts).")
keys_app = typer_app("API keys.")
credits_app = typer_app("Credits wallet.")
webhooks_app = typer_app("Callback (webhook) signing.")


def register(app: typer.Typer) -> None:
    app.add_typer(teams_app, name="teams")
    app.add_typer(keys_app, name="keys")
    app.add_typer(credits_app, name="credits")
    app.add_typer(webhooks_app, name="webhooks")


@teams_app.command("create")
def teams_create(name: Annotated[str, typer.Argument(help="Team name.")]) -> None:
    """Create a team (with an empty wallet)."""
    from sleuth.platform.auth import create_team
    from sleuth.platform.errors import SleuthError

    try:
        team = create_team(_db(), name)
    except SleuthError as e:
        _fail(e.message)
    typer.echo(f"created team {team.name} ({team.id})")


@teams_app.command("list")
def teams_list() -> None:
    """List teams."""
    from sleuth.platform.auth import list_teams

    for t in list_teams(_db()):
        typer.echo(f"{t.id}  {t.name}  created {t.created_at:%Y-%m-%d}")


@keys_app.command("create")
def keys_create(
    team: Annotated[str, typer.Option("--team", help="Team name or id (created if missing with --create-team).")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    create_team_too: Annotated[bool, typer.Option("--create-team", help="Create the team if missing.")] = False,
) -> None:
    """Create an API key. The key is printed once and never stored."""
    from sleuth.platform.auth import create_key, create_team
    from sleuth.platform.errors import SleuthError

    db = _db()
    try:
        try:
            created = create_key(db, team, name)
        except SleuthError as e:
            if e.code != "team_not_found" or not create_team_too:
                raise
            create_team(db, team)
            created = create_key(db, team, name)
    except SleuthError as e:
        _fail(e.message)
    typer.echo(created.key)
    typer.secho(f"key id {created.id} (prefix {created.prefix}); store it now, it is not shown again", err=True)


@keys_app.command("list")
def keys_list(team: Annotated[str | None, typer.Option(help="Only this team.")] = None) -> None:
    """List API keys (prefixes only)."""
    from sleuth.platform.auth import list_keys

    for k, team_name in list_keys(_db(), team):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {k.prefix}…  team={team_name}  {state}  {k.name}")


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke an API key (it gets 401 from then on)."""
    from sleuth.platform.auth import revoke_key
    from sleuth.platform.errors import SleuthError

    try:
        k = revoke_key(_db(), key)
    except SleuthError as e:
        _fail(e.message)
    typer.echo(f"revoked {k.id}")


@credits_app.command("grant")
def credits_grant(
    team: Annotated[str, typer.Option("--team", help="Team name or id.")],
    amount: Annotated[int, typer.Argument(help="Credits to add.")],
    reason: Annotated[str, typer.Option(help="Ledger note.")] = "grant",
) -> None:
    """Grant credits to a team's wallet."""
    from sleuth.platform import credits
    from sleuth.platform.auth import get_team
    from sleuth.platform.errors import SleuthError

    db = _db()
    try:
        t = get_team(db, team)
        credits.grant(db, t.id, amount, reason)
    except SleuthError as e:
        _fail(e.message)
    typer.echo(f"granted {amount}; balance {credits.balance(db, t.id).available}")


@credits_app.command("balance")
def credits_balance(team: Annotated[str, typer.Option("--team", help="Team name or id.")]) -> None:
    """Show a team's balance."""
    from sleuth.platform import credits
    from sleuth.platform.auth import get_team

    db = _db()
    t = get_team(db, team)
    b = credits.balance(db, t.id)
    typer.echo(
        json.dumps(
            {
                "available": b.available,
                "granted": b.granted_total,
                "captured": b.captured_total,
                "reserved": b.reserved_open,
            }
        )
    )


@webhooks_app.command("secret")
def webhooks_secret(
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace the secret first (effective at once).")] = False,
) -> None:
    """Print the team's callback signing secret (whsec_...), the key a receiver verifies signatures with. The
    same secret as GET /v1/team/webhook-secret; --rotate is POST /v1/team/webhook-secret/rotate."""
    from sleuth.platform import teams
    from sleuth.platform.auth import get_team
    from sleuth.platform.errors import SleuthError

    db = _db()
    try:
        t = get_team(db, team)
        secret = teams.rotate_webhook_secret(db, t.id) if rotate else teams.webhook_secret(db, t.id)
    except SleuthError as e:
        _fail(e.message)
    typer.echo(secret)
    if rotate:
        typer.secho(f"rotated the webhook secret of team {t.name}; callbacks are signed with it from now on", err=True)
