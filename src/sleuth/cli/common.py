"""Helpers shared by the command groups."""

from __future__ import annotations

import typer

from sleuth.settings import get_settings


def db():
    from sleuth.db.engine import Database
    from sleuth.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    return Database(settings)


def fail(msg: str, code: int = 1) -> None:
    typer.secho(msg, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
