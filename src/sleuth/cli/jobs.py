"""``sleuth worker``: job workers as a separate process against the same database.

``sleuth worker`` polls the database (embedded dispatch). ``sleuth worker --celery`` runs a
Celery worker consuming ``<celery_queue_prefix>.<kind>`` queues (``SLEUTH_QUEUE=celery``);
both execute items with the same :func:`sleuth.platform.jobs.run_item`. ``sleuth workers``
lists live Celery workers and what they serve.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Annotated

import typer


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        threads: Annotated[int, typer.Option(help="Worker threads in this process (Celery: concurrency).")] = 2,
        celery: Annotated[
            bool, typer.Option("--celery", help="Run a Celery worker instead (SLEUTH_QUEUE=celery).")
        ] = False,
        kinds: Annotated[
            str, typer.Option(help="Comma-separated job kinds to serve (default: every installed kind).")
        ] = "",
        preload: Annotated[
            str, typer.Option(help="Comma-separated catalog models to load before taking work (Celery).")
        ] = "",
        pool: Annotated[str, typer.Option(help="Celery pool: threads or solo (one process, models loaded once).")] = (
            "threads"
        ),
        loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    ) -> None:
        """Run job workers (claim queued items, heartbeat, reap dead workers, deliver callbacks)."""
        from sleuth.db.migrate import upgrade
        from sleuth.platform.context import Platform
        from sleuth.platform.webhooks import Deliverer
        from sleuth.platform.worker import Worker
        from sleuth.services import load_handlers
        from sleuth.settings import get_settings

        settings = get_settings()
        kind_list = _csv(kinds) or None
        if celery:
            if pool not in ("threads", "solo"):
                typer.secho(f"--pool must be threads or solo, not {pool!r}", err=True)
                raise typer.Exit(2)
            # a Celery worker re-publishes reaped/orphaned items to the broker whatever SLEUTH_QUEUE says
            settings = settings.model_copy(update={"queue": "celery"})
            _celery_worker(settings, threads, kind_list, _csv(preload), pool, loglevel)
            return
        upgrade(settings)
        load_handlers()
        platform = Platform.create(settings)
        w = Worker(platform, threads=threads, kinds=kind_list).start()
        from sleuth.engine import heap

        heap.configure(settings)
        d = Deliverer(platform.db)
        d.start()
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        typer.echo(f"worker {w.id} running with {threads} threads")
        done.wait()
        w.stop()
        d.stop()

    @app.command()
    def workers(
        timeout: Annotated[float, typer.Option(help="Seconds to wait for replies.")] = 2.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List live Celery workers: job kinds, queues, loaded models, providers, in-flight items."""
        from sleuth.platform.dispatch import list_workers
        from sleuth.settings import get_settings

        found = list_workers(get_settings(), timeout=timeout)
        if as_json:
            typer.echo(json.dumps(found, indent=2, sort_keys=True))
            return
        if not found:
            typer.echo("no Celery workers answered")
            return
        for host, info in sorted(found.items()):
            typer.echo(
                f"{host}: kinds={','.join(info.get('kinds', []))} models={','.join(info.get('models', []))} "
                f"providers={','.join(info.get('providers', []))} inflight={info.get('inflight', 0)}"
            )


def _celery_worker(
    settings: object, threads: int, kinds: list[str] | None, preload: list[str], pool: str, loglevel: str
) -> None:
    from sleuth.db.migrate import upgrade
    from sleuth.platform import dispatch
    from sleuth.platform.context import Platform
    from sleuth.platform.webhooks import Deliverer
    from sleuth.settings import Settings

    assert isinstance(settings, Settings)
    upgrade(settings)
    try:
        app = dispatch.celery_app(settings)
    except (ValueError, RuntimeError) as e:
        typer.secho(str(e), err=True)
        raise typer.Exit(2) from e
    platform = Platform.create(settings)
    rt = dispatch.init_runtime(platform, kinds, preload)
    if not rt.kinds:
        typer.secho("no job kinds to serve (none installed or --kinds empty)", err=True)
        raise typer.Exit(2)
    queues = [dispatch.queue_name(settings, k) for k in rt.kinds]
    deliverer = Deliverer(platform.db)
    deliverer.start()
    typer.echo(f"celery worker {rt.worker_id}: kinds={','.join(rt.kinds)} queues={','.join(queues)}", err=True)
    try:
        app.worker_main(
            [
                "worker",
                f"--pool={pool}",
                f"--concurrency={1 if pool == 'solo' else max(1, threads)}",
                "--queues",
                ",".join(queues),
                "--hostname",
                f"sleuth-{os.getpid()}@%h",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        rt.stop()
        deliverer.stop()
