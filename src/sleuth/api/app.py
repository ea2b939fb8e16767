"""FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sleuth import __version__
from sleuth.api import errors, openapi
from sleuth.api.limits import BodyLimitMiddleware
from sleuth.api.routing import canonical_path
from sleuth.db.migrate import upgrade
from sleuth.platform.context import Platform
from sleuth.services.sweep import Sweeper
from sleuth.settings import Settings, get_settings


def _is_json(scope: dict[str, Any]) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.lower().startswith(b"application/json"))
    return False


def body_limit_for(settings: Settings):
    mb = 1_000_000

    def limit(scope: dict[str, Any]) -> int | None:
        path = canonical_path(scope.get("path", ""))
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return None
        if path.startswith("/detect/batch"):
            return int(settings.max_batch_upload_mb * mb) + mb  # form overhead
        if path == "/detect" and _is_json(scope):
            return mb  # a JSON body only carries a url and options
        if path == "/detect" or path.startswith(("/detect/", "/identity")) or path == "/secure_uploads":
            return int(settings.max_detect_upload_mb * mb) + mb
        if path.startswith("/v1/uploads/"):
            return None  # the upload route enforces the job's declared size
        return int(settings.max_body_mb * mb)

    return limit


def create_app(settings: Settings | None = None, *, migrate: bool = True, background: bool = True) -> FastAPI:
    settings = settings or get_settings()
    from sleuth.services.model_selection import check_selection

    check_selection(settings)  # a profile naming a model that is not installed fails here, not on a request
    if migrate:
        upgrade(settings)
    platform = Platform.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = None
        if background:
            sweeper = Sweeper(platform.db, platform.storage, settings.sweep_interval_s)
            sweeper.start()
            for start in app.state.startup_hooks:
                start(platform)
        try:
            yield
        finally:
            for stop in app.state.shutdown_hooks:
                stop(platform)
            if sweeper is not None:
                sweeper.stop()

    app = FastAPI(
        title="sleuth",
        version=__version__,
        description="Self-hosted batch detection: camera-trap wildlife (Animal Detect–compatible) and "
        "deepfake detection (Resemble Detect–compatible).",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from sleuth.api.ui, with the assets inside the package
        redoc_url=None,
    )
    app.state.platform = platform
    app.state.startup_hooks = [_start_workers] if settings.workers > 0 and settings.queue == "local" else []
    app.state.startup_hooks += [_start_deliverer, _start_trimmer]
    app.state.shutdown_hooks = [_stop_background]
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit_for(settings))

    from sleuth.api import platform_routes

    platform_routes.mount(app)
    for mount in _route_modules():
        mount(app)
    openapi.install(app)
    return app


def _start_workers(platform: Platform) -> None:
    from sleuth.platform.worker import Worker
    from sleuth.services import load_handlers

    load_handlers()
    platform.extras["worker"] = Worker(platform, threads=platform.settings.workers).start()


def _start_deliverer(platform: Platform) -> None:
    from sleuth.platform.webhooks import Deliverer

    d = Deliverer(platform.db)
    d.start()
    platform.extras["deliverer"] = d


def _start_trimmer(platform: Platform) -> None:
    from sleuth.engine import heap

    trimmer = heap.configure(platform.settings)
    if trimmer is not None:
        platform.extras["trimmer"] = trimmer


def _stop_background(platform: Platform) -> None:
    for name in ("worker", "deliverer", "trimmer"):
        obj = platform.extras.pop(name, None)
        if obj is not None:
            obj.stop()  # type: ignore[attr-defined]


def _route_modules() -> list[Any]:
    """API families register themselves here (each module exposes ``mount(app)``)."""
    mounts: list[Any] = []
    import importlib

    for name in (
        "sleuth.api.wildlife",
        "sleuth.api.deepfake",
        "sleuth.api.source_tracing",
        "sleuth.api.uploads",
        "sleuth.api.identity",
        "sleuth.api.jobs",
        # the web app's routes (issue 18): media links, upload groups, reviews, exports, team, timeline, pages
        "sleuth.api.media",
        "sleuth.api.upload_groups",
        "sleuth.api.reviews",
        "sleuth.api.exports",
        "sleuth.api.team",
        "sleuth.api.timeline",
        "sleuth.api.ui",
    ):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mounts.append(mod.mount)
    return mounts


def serve_app() -> FastAPI:
    """Factory used by ``sleuth serve`` (migrations already ran in the CLI process)."""
    return create_app(get_settings(), migrate=False)
