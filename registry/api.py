"""The REST API: routers, error rendering and request hygiene — no logic of its own."""

from __future__ import annotations

import json
import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry import __version__
from registry.accounts.routes import auth_router, users_router
from registry.audit.routes import router as audit_router
from registry.breakglass.routes import router as breakglass_router
from registry.config import Environment
from registry.coordinators.routes import router as coordinators_router
from registry.corrections.routes import router as corrections_router
from registry.errors import RegistryError
from registry.imports.routes import router as imports_router
from registry.jurisdictions.routes import router as jurisdictions_router
from registry.keys.routes import router as keys_router
from registry.metrics.routes import router as metrics_router
from registry.persons.routes import router as persons_router
from registry.releases.routes import router as releases_router
from registry.rentals.routes import router as rentals_router
from registry.residents.routes import router as residents_router
from registry.retention.routes import router as retention_router
from registry.vault.runtime import Registry
from registry.web import PREFIX as WEB_PREFIX
from registry.web import create_web_app, too_large_page

log = logging.getLogger("registry.api")

# Routes anyone may call; tests/test_route_matrix.py proves every other route needs a token.
PUBLIC_PATHS = frozenset({"/health", "/auth/token", "/auth/password", "/docs",
                          "/docs/oauth2-redirect", "/openapi.json", "/redoc"})

_ZH = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不允许的字段",
    "string_too_long": "超出最大长度",
    "string_too_short": "长度不足",
    "string_pattern_mismatch": "格式不正确",
    "string_type": "须为文本",
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "int_from_float": "须为整数",
    "bool_parsing": "须为是或否",
    "date_parsing": "须为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "须为日期（YYYY-MM-DD）",
    "date_type": "须为日期（YYYY-MM-DD）",
    "datetime_parsing": "须为日期时间",
    "datetime_from_date_parsing": "须为日期时间",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "greater_than_equal": "小于允许的最小值",
    "less_than_equal": "大于允许的最大值",
    "greater_than": "小于允许的最小值",
    "less_than": "大于允许的最大值",
    "uuid_parsing": "须为有效的记录编号",
    "uuid_type": "须为有效的记录编号",
    "json_invalid": "JSON 格式错误",
    "model_attributes_type": "须为对象",
    "dict_type": "须为对象",
    "list_type": "须为列表",
}


def _field(loc: tuple, error_type: str = "") -> str:
    if error_type == "json_invalid":  # the location is a character offset, not a field
        return "body"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_body(exc: RequestValidationError) -> dict:
    errors = [
        {"field": _field(tuple(e.get("loc", ())), e.get("type", "")),
         "message": e.get("msg", "invalid"),
         "message_zh": _ZH.get(e.get("type", ""), "字段无效")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid",
                                      "message_zh": "请求无效"}
    # Never the submitted values: pydantic's "input" and "ctx" are dropped on purpose.
    return {"error": {"code": "invalid", "message": f"{first['field']}: {first['message']}",
                      "message_zh": f"{first['field']}：{first['message_zh']}",
                      "field": first["field"], "errors": errors}}


UPLOAD_PREFIX = "/imports/"
_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


def _error(status: int, code: str, en: str, zh: str, **extra) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": en, "message_zh": zh,
                                         **extra}}, ensure_ascii=False).encode()


class RequestHygiene:
    """The outermost layer of every request: a request id; a cap on body size, streamed
    bodies included (413); response headers that keep personal data out of caches and
    frames; and the last word on unexpected errors — a JSON 500 naming the request id, logged
    by exception type only (exception text can carry values), never a traceback."""

    def __init__(self, app, max_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes  # ledger uploads (POST /imports/…), streamed to disk

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        headers = [(b"x-request-id", request_id.encode()), *_HEADERS]
        limit = (self.upload_bytes if scope.get("path", "").startswith(UPLOAD_PREFIX)
                 else self.max_bytes)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = _error(413, "too_large", f"request body exceeds {limit} bytes",
                           "请求内容过大")

        async def refuse_too_large() -> None:
            if scope.get("path", "").startswith(WEB_PREFIX + "/"):  # a page, for the pages
                status, body, page_headers = too_large_page(scope, limit)
                await self._send(send, status, body, [*page_headers, *headers])
            else:
                await self._send(send, *too_large, headers)

        if length is not None and (not length.isdigit() or int(length) > limit):
            await refuse_too_large()
            return
        received, overflow, started = 0, False, False

        async def limited_receive():
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True  # the app sees a disconnect; the client gets the 413
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if overflow:
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", [])) + headers
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:  # the last line of defence, by design
            if not overflow:
                log.error("unhandled %s in request %s", type(exc).__name__, request_id)
                if not started:
                    await self._send(send, *_error(
                        500, "internal", f"internal error (request {request_id})",
                        f"内部错误（请求编号 {request_id}）"), headers)
                return
        if overflow and not started:
            await refuse_too_large()

    @staticmethod
    async def _send(send, status: int, body: bytes, headers: list) -> None:
        if not any(name == b"content-type" for name, _ in headers):
            headers = [(b"content-type", b"application/json"), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(registry: Registry) -> FastAPI:
    # The interactive docs load their scripts from a CDN into this origin, where the pages'
    # session cookie lives: a developer's tool, off in production (/openapi.json stays).
    docs = registry.settings.environment is not Environment.production
    app = FastAPI(
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        title="registry",
        version=__version__,
        description="Rental, resident, corrections and aftercare registers for a county's "
                    "public-safety and justice offices. Personal data is encrypted at rest, "
                    "scoped by jurisdiction, masked by role, and every access is audited.",
    )
    app.state.registry = registry

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_body(exc), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not parse the body at all
            return JSONResponse({"error": {
                "code": "invalid", "field": "body",
                "message": "body: not readable as JSON (encoding, nesting or number size)",
                "message_zh": "body：无法按 JSON 解析（编码、嵌套层数或数字长度）"}},
                status_code=422)
        messages = {404: ("not found", "未找到"), 405: ("method not allowed", "不支持该请求方法")}
        en, zh = messages.get(exc.status_code, (str(exc.detail), "请求错误"))
        return JSONResponse({"error": {"code": "http", "message": en, "message_zh": zh}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        """Liveness: no data, no authentication."""
        return {"status": "ok", "version": __version__}

    for router in (auth_router, users_router, jurisdictions_router, rentals_router,
                   residents_router, corrections_router, releases_router, coordinators_router,
                   imports_router, metrics_router, audit_router, keys_router,
                   breakglass_router, persons_router, retention_router):
        app.include_router(router)
    # The pages: their own session cookie, form tokens and error pages; the same services
    # through the same gate (tests/web/test_pages_matrix.py walks them).
    app.mount(WEB_PREFIX, create_web_app(registry))
    app.add_middleware(RequestHygiene, max_bytes=registry.settings.max_request_bytes,
                       upload_bytes=registry.settings.max_upload_bytes)
    return app
