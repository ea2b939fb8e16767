"""The web app and the API docs, served by ``sleuth serve`` from files inside the package (no CDN, nothing fetched
from outside at run time).

* ``/``, ``/ui``, ``/ui/...`` and ``/results``: the single-page app (``sleuth/web/index.html``); its scripts and
  styles under ``/ui/static/``. The page sets a Content-Security-Policy that only allows this origin.
* ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from ``sleuth/web/vendor/`` (pinned npm releases, see
  ``scripts/vendor_web_assets.py``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

WEB = Path(str(resources.files("sleuth") / "web"))
STATIC = "/ui/static"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Static(StaticFiles):
    """Static files that browsers revalidate (the files change with the package, their names do not)."""

    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _page() -> Response:
    return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"), headers=PAGE_HEADERS)


def mount(app: FastAPI) -> None:
    app.mount(STATIC, _Static(directory=WEB), name="ui-static")

    for path in ("/", "/ui", "/ui/", "/results"):
        app.add_api_route(path, _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/{rest:path}", _page, methods=["GET"], include_in_schema=False)

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/vendor/swagger-ui/favicon-32x32.png",
            # no "valid" badge: it is an image from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, "deepLinking": True, "persistAuthorization": False},
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{STATIC}/vendor/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC}/vendor/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    async def favicon() -> Response:
        return RedirectResponse(f"{STATIC}/icon.svg")

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
