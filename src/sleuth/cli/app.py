"""The ``sleuth`` command line: the root app, ``serve``, ``db``, ``config`` and ``sweep``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sleuth import __version__
from sleuth.cli.common import db as _db
from sleuth.cli.common import typer_app
from sleuth.settings import get_settings

app = typer_app("sleuth: self-hosted batch detection for camera-trap wildlife and deepfake media.")
db_app = typer_app("Database migrations.")
app.add_typer(db_app, name="db")


# Commands that read or write the data folder (database, storage, model cache): they say where it is on the
# first run, and warn when an older version's ./data is used.
_DATA_COMMANDS = {"serve", "worker", "detect", "keys", "teams", "credits", "models", "db", "sweep", "webhooks"}


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
    if ctx.invoked_subcommand in _DATA_COMMANDS and "--help" not in rest:
        for line in get_settings().data_dir_notices():
            typer.secho(line, err=True, fg=typer.colors.YELLOW)


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
    """Delete expired results, jobs and media now: exactly what the server's periodic sweeper deletes."""
    from sleuth.platform.context import Platform
    from sleuth.services.sweep import sweep

    p = Platform.create(get_settings())
    _db()
    typer.echo(str(sweep(p.db, p.storage)))


def _register_subcommands() -> None:
    from sleuth.cli import accounts, detect, jobs, models

    accounts.register(app)
    app.add_typer(models.app, name="models")
    jobs.register(app)
    detect.register(app)


_register_subcommands()


def main() -> None:
    app(sys.argv[1:])
