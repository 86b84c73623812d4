"""The web pages: server-rendered, in Chinese by default (English switchable), served by the
same process as the API under ``/web``, and calling the same services through the same gate.

No build step and nothing from outside: Jinja2 templates with autoescaping, one CSS file and
one small script shipped in ``static/``, a Content-Security-Policy that allows nothing but
this origin (no inline script, no inline style). Each module holds one office's pages;
:mod:`registry.web.kit` holds the session, the form token, form parsing and rendering.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import Forbidden, NotFound, RegistryError
from registry.vault.runtime import Registry
from registry.web import admin, aftercare, auditing, auth, dashboard, field, supervision
from registry.web.kit import PREFIX, CsrfRefused, SignInRequired, lang_of, render, sign_in_redirect

__all__ = ["PREFIX", "PUBLIC_PAGES", "create_web_app", "too_large_page"]

# Pages anyone may open (tests/web/test_pages_matrix.py proves every other page asks for a
# session first); paths are relative to PREFIX.
PUBLIC_PAGES = frozenset({"/sign-in", "/password", "/lang/{code}", "/static"})

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class PageHeaders:
    """Headers of every page response: a Content-Security-Policy that forbids inline script
    and anything from elsewhere (an injected ``<script>`` that slipped past escaping would
    still not run), and no caching of pages that hold personal data."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"content-security-policy", CSP.encode()),
                                      (b"cross-origin-opener-policy", b"same-origin")]
            await send(message)

        await self.app(scope, receive, with_headers)


class PagesApp(FastAPI):
    """The pages' application, with :class:`PageHeaders` outside all of it: Starlette runs
    the catch-all (500) handler in its outermost layer, beyond any added middleware, so a
    middleware added the usual way would leave the error page without its CSP."""

    def build_middleware_stack(self):
        return PageHeaders(super().build_middleware_stack())


def _error_page(request: Request, status: int, key: str, **values) -> HTMLResponse:
    return render(request, "error.html", lang=lang_of(request), status=status,
                  key=key, values=values)


def too_large_page(scope, limit: int) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The page answering a post to the pages whose body is over REGISTRY_MAX_REQUEST_BYTES:
    (status, body, headers), the pages' own headers included. The API's outermost layer
    refuses such a request before any app reads it, so it is the one to ask for this page
    (instead of its JSON 413) when the path is under :data:`PREFIX`."""
    request = Request({**scope, "type": "http"})
    response = render(request, "error.html", lang=lang_of(request), status=413,
                      key="error.too_large", values={"kib": max(limit // 1024, 1)},
                      back=PREFIX + "/")
    headers = [(b"content-type", b"text/html; charset=utf-8"),
               (b"content-security-policy", CSP.encode()),
               (b"cross-origin-opener-policy", b"same-origin")]
    return 413, response.body, headers


def create_web_app(registry: Registry) -> FastAPI:
    web = PagesApp(docs_url=None, redoc_url=None, openapi_url=None)
    web.state.registry = registry

    @web.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired):
        return sign_in_redirect(request, expired=bool(request.cookies.get("registry_session")))

    @web.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused):
        return _error_page(request, 403, "error.csrf")

    @web.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError):
        if isinstance(exc, NotFound):
            return _error_page(request, 404, "error.not_found")
        if isinstance(exc, Forbidden):
            return _error_page(request, 403, "error.forbidden")
        return render(request, "error.html", lang=lang_of(request), status=exc.status,
                      message=exc.message_zh if lang_of(request) == "zh" else exc.message)

    @web.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError):
        return _error_page(request, 404, "error.not_found")  # a malformed id names nothing

    @web.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        key = {404: "error.not_found", 405: "error.method"}.get(exc.status_code, "error.title")
        return _error_page(request, exc.status_code, key)

    @web.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # A page, naming the request; RequestHygiene (api.py) still logs the exception type.
        return _error_page(request, 500, "error.internal",
                           id=getattr(request.state, "request_id", "-"))

    for module in (auth, field, supervision, aftercare, dashboard, auditing, admin):
        web.include_router(module.router)
    web.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return web
