"""Signing in and out, changing a reset password, the language switch, the start page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from registry.deps import client_address
from registry.errors import Invalid, Locked, PasswordChangeRequired, RegistryError
from registry.web.i18n import translate
from registry.web.kit import (
    LANG_COOKIE,
    PREFIX,
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    FormDep,
    PageDep,
    PublicFormDep,
    csrf_for,
    drop_cookie,
    lang_of,
    local_path,
    new_presession,
    redirect,
    render,
    set_cookie,
)

router = APIRouter()

_PRESESSION_SECONDS = 30 * 60


def _public_form(request: Request, template: str, *, status: int = 200, **context):
    """A page with a form posted before sign-in, and a fresh pre-session cookie for its
    token."""
    secret = new_presession()
    response = render(request, template, lang=lang_of(request), status=status,
                      csrf=csrf_for(secret), **context)
    set_cookie(response, request, PRESESSION_COOKIE, secret, max_age=_PRESESSION_SECONDS)
    return response


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None, expired: bool = False,
                 done: str | None = None):
    notice = {"signed_out": "signed_out", "password": "change_password.done"}.get(done or "")
    return _public_form(request, "sign_in.html", next=local_path(next), expired=expired,
                        idle=request.app.state.registry.settings.token_idle_minutes,
                        notice=notice, values={}, errors={})


@router.post("/sign-in")
def sign_in(request: Request, form: PublicFormDep):
    """Signing in ends the session this browser had before, whatever the outcome: a second
    account signed in on a shared phone must not leave the first one's token alive."""
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        request.app.state.registry.auth.logout(previous)
    response = _sign_in(request, form)
    cookies = response.headers.getlist("set-cookie")
    if previous and not any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies):
        drop_cookie(response, request, SESSION_COOKIE)  # refused: no session now
    return response


def _sign_in(request: Request, form: dict[str, str]):
    registry = request.app.state.registry
    lang = lang_of(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    target = local_path(form.get("next"))
    values = {"username": username}
    try:
        if not username or not password:
            raise Invalid("username and password are required", "请输入用户名和密码")
        token, _ = registry.auth.login(username, password,
                                       request_id=request.state.request_id,
                                       client_address=client_address(request))
    except PasswordChangeRequired:
        return _public_form(request, "password.html", needed=True, values=values, errors={})
    except Locked as exc:
        until = exc.extra.get("locked_until", "")
        local = until
        if until:
            local = datetime.fromisoformat(until).astimezone(registry.clock.tz).strftime(
                "%Y-%m-%d %H:%M")
        message = translate(lang, "locked", until=local)
        return _public_form(request, "sign_in.html", status=423, next=target, expired=False,
                            notice=None, values=values, errors={"": message})
    except RegistryError as exc:
        page = _public_form(request, "sign_in.html", status=exc.status, next=target,
                            expired=False, notice=None, values=values,
                            errors={"": exc.message_zh if lang == "zh" else exc.message})
        if "retry_after" in exc.extra:  # the per-address throttle (429)
            page.headers["Retry-After"] = str(exc.extra["retry_after"])
        return page
    response = redirect(target)
    set_cookie(response, request, SESSION_COOKIE, token)
    drop_cookie(response, request, PRESESSION_COOKIE)
    return response


@router.get("/password")
def password_page(request: Request):
    return _public_form(request, "password.html", needed=False, values={}, errors={})


@router.post("/password")
def change_password(request: Request, form: PublicFormDep):
    registry = request.app.state.registry
    lang = lang_of(request)
    username = form.get("username", "").strip()
    try:
        if len(form.get("new_password", "")) < 10:
            raise Invalid("at least 10 characters", "至少10个字符", field="new_password")
        registry.auth.change_password(username, form.get("password", ""),
                                      form.get("new_password", ""),
                                      request_id=request.state.request_id,
                                      client_address=client_address(request))
    except RegistryError as exc:
        message = exc.message_zh if lang == "zh" else exc.message
        return _public_form(request, "password.html", status=exc.status, needed=False,
                            values={"username": username},
                            errors={exc.field if exc.field == "new_password" else "": message})
    return redirect(f"{PREFIX}/sign-in?done=password")


@router.post("/sign-out")
def sign_out(page: PageDep, form: FormDep):
    page.registry.auth.logout(page.token)
    response = redirect(f"{PREFIX}/sign-in?done=signed_out")
    drop_cookie(response, page.request, SESSION_COOKIE)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str,
                    next: Annotated[str | None, Query()] = None):
    response = redirect(local_path(next))
    if code in ("zh", "en"):
        set_cookie(response, request, LANG_COOKIE, code, max_age=365 * 24 * 3600)
    return response


@router.get("/")
def home(page: PageDep):
    return page.render("home.html")
