"""The ``sleuth`` command line, one module per command group."""

from sleuth.cli.app import app, main

__all__ = ["app", "main"]
