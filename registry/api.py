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
from registry.errors import RegistryError
from registry.jurisdictions.routes import router as jurisdictions_router
from registry.rentals.routes import router as rentals_router
from registry.vault.runtime import Registry

log = logging.getLogger("registry.api")

# Routes anyone may call; tests/test_route_matrix.py proves every other route needs a token.
PUBLIC_PATHS = frozenset({"/health", "/auth/token", "/docs", "/docs/oauth2-redirect",
                          "/openapi.json", "/redoc"})

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


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_body(exc: RequestValidationError) -> dict:
    errors = [
        {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid"),
         "message_zh": _ZH.get(e.get("type", ""), "字段无效")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid",
                                      "message_zh": "请求无效"}
    # Never the submitted values: pydantic's "input" and "ctx" are dropped on purpose.
    return {"error": {"code": "invalid", "message": f"{first['field']}: {first['message']}",
                      "message_zh": f"{first['field']}：{first['message_zh']}",
                      "field": first["field"], "errors": errors}}


class RequestHygiene:
    """Request ids, a cap on body size (streamed bodies included), and response headers that
    keep personal data out of caches and frames."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(send, request_id)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-request-id", request_id.encode()),
                         (b"cache-control", b"no-store"),
                         (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send, request_id)

    async def _too_large(self, send, request_id: str) -> None:
        body = json.dumps({"error": {
            "code": "too_large", "message": f"request body exceeds {self.max_bytes} bytes",
            "message_zh": "请求内容过大"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"x-request-id", request_id.encode())]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


def create_app(registry: Registry) -> FastAPI:
    app = FastAPI(
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
        messages = {404: ("not found", "未找到"), 405: ("method not allowed", "不支持该请求方法")}
        en, zh = messages.get(exc.status_code, (str(exc.detail), "请求错误"))
        return JSONResponse({"error": {"code": "http", "message": en, "message_zh": zh}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        # The type only: exception text can carry values.
        log.error("unhandled %s in request %s", type(exc).__name__, request_id)
        return JSONResponse({"error": {"code": "internal",
                                       "message": f"internal error (request {request_id})",
                                       "message_zh": f"内部错误（请求编号 {request_id}）"}},
                            status_code=500)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        """Liveness: no data, no authentication."""
        return {"status": "ok", "version": __version__}

    for router in (auth_router, users_router, jurisdictions_router, rentals_router,
                   audit_router):
        app.include_router(router)
    app.add_middleware(RequestHygiene, max_bytes=registry.settings.max_request_bytes)
    return app
