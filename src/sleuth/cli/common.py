"""Helpers shared by the command groups."""

from __future__ import annotations

from typing import Any

import typer

from sleuth.settings import get_settings


def typer_app(help: str, **kwargs: Any) -> typer.Typer:
    """A command group. Help is rendered by click's plain formatter (``rich_markup_mode=None``): typer's rich
    panels print a type for every flag (``--help <bool>``, ``--resume <bool>``), which reads as if the flag
    took a value. The plain formatter writes flags bare and options with their value type."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(help=help, rich_markup_mode=None, add_completion=False, **kwargs)


def db():
    from sleuth.db.engine import Database
    from sleuth.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    return Database(settings)


def fail(msg: str, code: int = 1) -> None:
    typer.secho(msg, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
