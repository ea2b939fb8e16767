"""The ``sleuth`` command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from sleuth import __version__
from sleuth.settings import get_settings

app = typer.Typer(
    help="sleuth: self-hosted batch detection for camera-trap wildlife and deepfake media.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
teams_app = typer.Typer(help="Teams (accounts).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="Credits wallet.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(teams_app, name="teams")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")


def _mount_optional(module: str, name: str) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return
        raise
    sub = getattr(mod, "app", None)
    if sub is not None:
        app.add_typer(sub, name=name)
    register = getattr(mod, "register", None)
    if register is not None:
        register(app)


def _db():
    from sleuth.db.engine import Database
    from sleuth.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    return Database(settings)


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(msg, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default SLEUTH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SLEUTH_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="HTTP worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the HTTP API (runs database migrations first)."""
    import uvicorn

    from sleuth.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    uvicorn.run(
        "sleuth.api.app:serve_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=log_level,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations."""
    from sleuth.db.migrate import current, upgrade

    settings = get_settings()
    upgrade(settings, revision)
    typer.echo(f"database at revision {current(settings)}")


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


@app.command("config")
def config_show() -> None:
    """Print every setting, its environment variable and current value."""
    from sleuth.settings import settings_table

    s = get_settings()
    for row in settings_table():
        name = row["env"][len("SLEUTH_") :].lower()
        typer.echo(f"{row['env']:<28} = {getattr(s, name)!s:<32} {row['description']}")


@app.command("sweep")
def sweep_cmd() -> None:
    """Delete expired results and media now."""
    from sleuth.platform.context import Platform
    from sleuth.platform.expiry import sweep

    p = Platform.create(get_settings())
    _db()
    typer.echo(str(sweep(p.db, p.storage)))


_mount_optional("sleuth.cli_models", "models")
_mount_optional("sleuth.cli_jobs", "worker")
_mount_optional("sleuth.cli_detect", "detect")


def main() -> None:
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
