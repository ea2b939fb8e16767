"""Every command's --help lists flags bare (no ``--help <bool>``) and options with their value type."""

from __future__ import annotations

import typer
from typer.testing import CliRunner


def _commands(group: object, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            out += _commands(cmd, [*prefix, name])
        else:
            out.append([*prefix, name])
    return out


def test_help_never_types_a_flag():
    from sleuth.cli import app

    root = typer.main.get_command(app)
    paths = _commands(root, [])
    assert ["detect"] in paths and ["keys", "create"] in paths and ["models", "pull"] in paths
    runner = CliRunner()
    for path in paths:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.output, (path, r.output)
        assert "--help " in r.output and "Show this message and exit." in r.output
    detect_help = runner.invoke(app, ["detect", "--help"]).output
    assert "--latitude <float>" in detect_help and "--resume " in detect_help
