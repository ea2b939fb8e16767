"""``sleuth worker``: job workers as a separate process against the same database."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        threads: Annotated[int, typer.Option(help="Worker threads in this process.")] = 2,
        celery: Annotated[
            bool, typer.Option("--celery", help="Run a Celery worker instead (SLEUTH_QUEUE=celery).")
        ] = False,
    ) -> None:
        """Run job workers (claim queued items, heartbeat, reap dead workers, deliver callbacks)."""
        from sleuth.db.migrate import upgrade
        from sleuth.platform.context import Platform
        from sleuth.platform.jobs import Worker
        from sleuth.platform.webhooks import Deliverer
        from sleuth.services import load_handlers
        from sleuth.settings import get_settings

        if celery:
            typer.secho("--celery: the Celery worker is not available in this build yet", err=True)
            raise typer.Exit(2)
        settings = get_settings()
        upgrade(settings)
        load_handlers()
        platform = Platform.create(settings)
        w = Worker(platform, threads=threads).start()
        d = Deliverer(platform.db)
        d.start()
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        typer.echo(f"worker {w.id} running with {threads} threads")
        done.wait()
        w.stop()
        d.stop()
