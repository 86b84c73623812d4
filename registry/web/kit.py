"""The pages' infrastructure: the signed-in page context, the session cookie and its CSRF
token, form parsing into the API's own schemas, rendering, and what every record's page
does alike (shown again under a stated purpose, a form on it written through the gate).

Sessions are the API's opaque bearer tokens carried in a cookie (HttpOnly, SameSite=Strict,
Secure over HTTPS): the same ``Authenticator`` checks them, with the same idle timeout,
lifetime, revocation and lockout. Every form carries a CSRF token derived from the session
token (HMAC, so it is unguessable without the cookie and dies with the session); a sign-in
form, before there is a session, carries one derived from a short-lived pre-session cookie.
A post without the right token is refused before anything else runs.

A page handler never holds a database session: :meth:`Page.vault` is the same gate the API
routes get, under the signed-in actor, and it rolls back unless the handler commits — so a
form that fails validation half-way saves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.routing import Match

from registry.config import CookieSecure
from registry.config import Environment as Deployment
from registry.errors import Conflict, Invalid, RegistryError, Unauthenticated
from registry.validation import parse_purpose
from registry.vault.base import Actor
from registry.vault.gate import Vault
from registry.vault.runtime import Registry
from registry.web.i18n import DEFAULT, LANGS, translate

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Enum)

PREFIX = "/web"
SESSION_COOKIE = "registry_session"
PRESESSION_COOKIE = "registry_presession"
LANG_COOKIE = "registry_lang"
CSRF_FIELD = "csrf_token"

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True, lstrip_blocks=True,
)

# What each role finds in the navigation: (catalogue key, path). The pages themselves are
# guarded by the gate, not by this list: a role that follows a link it lacks gets the
# gate's refusal.
NAVIGATION: dict[str, list[tuple[str, str]]] = {
    "police": [("nav.rentals", "/rentals"), ("nav.residents", "/residents"),
               ("nav.new_rental", "/rentals/new"), ("nav.search", "/search")],
    "coordinator": [("nav.rentals", "/rentals"), ("nav.residents", "/residents"),
                    ("nav.new_rental", "/rentals/new")],
    "corrections": [("nav.board", "/corrections/board"), ("nav.new_case", "/corrections/new")],
    "justice": [("nav.releases", "/releases"), ("nav.new_release", "/releases/new")],
    "leadership": [("nav.dashboard", "/dashboard")],
    "auditor": [("nav.audit", "/audit")],
    "admin": [("nav.admin", "/admin")],
}


class SignInRequired(Exception):
    """No session, or an expired, revoked or disabled one: the pages answer with the sign-in
    page (a redirect for a GET)."""


class CsrfRefused(Exception):
    """A post without this session's form token: stale, or forged on another site."""


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"registry-web-csrf", hashlib.sha256).hexdigest()


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, DEFAULT)
    return lang if lang in LANGS else DEFAULT


def local_path(target: str | None, default: str = PREFIX + "/") -> str:
    """A redirect target that stays on the pages: a path under /web, nothing else."""
    if (not target or not target.startswith(PREFIX + "/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 0x20 for c in target)):
        return default
    return target


def _has_page(request: Request, path: str) -> bool:
    scope = {"type": "http", "method": "GET", "path": path,
             "root_path": request.scope.get("root_path", "")}
    return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)


def here(request: Request) -> str:
    """Where the language link comes back to: this page; for a page answering a post (whose
    address takes no GET) the nearest page above it that does — the form's own page, the
    record it belongs to, the list — else the start page."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    path = request.url.path.rstrip("/")
    while path.startswith(PREFIX + "/"):
        if _has_page(request, path):
            return path
        path = path.rsplit("/", 1)[0]
    return PREFIX + "/"


def render(request: Request, template: str, *, lang: str, status: int = 200,
           actor: Actor | None = None, csrf: str = "", back: str | None = None,
           **context: Any) -> HTMLResponse:
    def t(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    html = templates.get_template(template).render(
        t=t, lang=lang, actor=actor, csrf=csrf, csrf_field=CSRF_FIELD, prefix=PREFIX,
        nav=NAVIGATION.get(actor.role, []) if actor else [],
        path=request.url.path, here=back or here(request), **context)
    return HTMLResponse(html, status_code=status)


def pager_base(values: dict[str, str]) -> str:
    """A list page's query string for its pager links (which append ``page=N``): the
    filters that are set, URL-encoded."""
    query = urlencode({k: v for k, v in values.items() if v})
    return f"?{query}&" if query else "?"


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def sign_in_redirect(request: Request, *, expired: bool) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    where = f"{PREFIX}/sign-in?next={quote(local_path(target), safe='/')}"
    return redirect(where + ("&expired=1" if expired else ""))


@dataclass
class Page:
    """One signed-in page request: who, in which language, with which form token."""

    request: Request
    registry: Registry
    actor: Actor
    token: str
    lang: str
    csrf: str = field(init=False)

    def __post_init__(self) -> None:
        self.csrf = csrf_for(self.token)

    def t(self, key: str, **values: object) -> str:
        return translate(self.lang, key, **values)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        """The gate for this request; rolled back unless the handler calls ``commit``."""
        with self.registry.vault(self.actor,
                                 request_id=self.request.state.request_id) as vault:
            yield vault

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, lang=self.lang, status=status, actor=self.actor,
                      csrf=self.csrf, **context)

    def message(self, error: RegistryError) -> str:
        return error.message_zh if self.lang == "zh" else error.message


def get_page(request: Request) -> Page:
    registry: Registry = request.app.state.registry
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    try:
        actor = registry.auth.authenticate(token)
    except Unauthenticated as exc:
        raise SignInRequired() from exc
    return Page(request, registry, actor, token, lang_of(request))


PageDep = Annotated[Page, Depends(get_page)]


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


def _same_token(posted: str, expected: str) -> bool:
    """A constant-time comparison that refuses, rather than fails on, a token that is not
    ASCII (``compare_digest`` raises TypeError on non-ASCII text)."""
    return bool(posted) and posted.isascii() and hmac.compare_digest(posted, expected)


async def get_form(request: Request, page: PageDep) -> dict[str, str]:
    """The posted fields, once the form token has been checked against the session's."""
    values = await _form(request)
    if not _same_token(values.pop(CSRF_FIELD, ""), page.csrf):
        raise CsrfRefused()
    return values


FormDep = Annotated[dict[str, str], Depends(get_form)]


async def get_public_form(request: Request) -> dict[str, str]:
    """A form posted before there is a session (sign-in, password change): checked against
    the pre-session cookie set when the form was shown."""
    values = await _form(request)
    secret = request.cookies.get(PRESESSION_COOKIE, "")
    if not secret or not _same_token(values.pop(CSRF_FIELD, ""), csrf_for(secret)):
        raise CsrfRefused()
    return values


PublicFormDep = Annotated[dict[str, str], Depends(get_public_form)]


def new_presession() -> str:
    return secrets.token_urlsafe(32)


def secure_cookies(request: Request) -> bool:
    """Whether the pages' cookies are Secure: as REGISTRY_COOKIE_SECURE says; by default
    (``auto``) in production always, elsewhere when the request came over HTTPS."""
    settings = request.app.state.registry.settings
    if settings.cookie_secure != CookieSecure.auto:
        return settings.cookie_secure == CookieSecure.true
    return settings.environment == Deployment.production or request.url.scheme == "https"


def set_cookie(response, request: Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True,
                        samesite="strict", secure=secure_cookies(request))


def drop_cookie(response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="strict",
                           secure=secure_cookies(request))


# --- forms ----------------------------------------------------------------------------------

_TYPES = {
    "missing": "v.missing", "string_too_long": "v.too_long", "string_too_short": "v.too_short",
    "date_parsing": "v.date", "date_from_datetime_parsing": "v.date", "date_type": "v.date",
    "datetime_parsing": "v.date", "int_parsing": "v.int", "int_type": "v.int",
    "int_from_float": "v.int", "enum": "v.choice", "literal_error": "v.choice",
    "greater_than_equal": "v.range", "less_than_equal": "v.range", "greater_than": "v.range",
    "less_than": "v.range", "string_pattern_mismatch": "v.format", "uuid_parsing": "v.choice",
    "value_error": "v.date",
}


class FormErrors(Exception):
    """Errors per form field (the field's name as the API names it: ``landlord.id_number``),
    and those that belong to no field of the form under ``""``."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def parse(schema: type[M], values: dict[str, str], *, lang: str,
                        ints: tuple[str, ...] = (), flags: tuple[str, ...] = ()) -> M:
    """A form's fields as the API's request schema: blank fields left out (so optional ones
    are absent and required ones "required"), dotted names nested, whole numbers and
    check boxes converted; pydantic's errors become messages next to their fields."""
    data: dict[str, Any] = {}
    collisions: set[str] = set()
    for name, raw in values.items():
        value: Any = raw.strip() if name not in ("password", "new_password") else raw
        if value == "":
            continue
        if name in ints and value.isascii() and value.isdigit() and len(value) < 10:
            value = int(value)  # "²" is a digit to isdigit() but not to int()
        if name in flags:
            value = value in ("on", "true", "1")
        node = data
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # "landlord=x" and "landlord.name=y" together
                collisions.add(name)
                break
        else:
            if isinstance(node.get(leaf), dict):  # "landlord.name=y", then "landlord=x":
                collisions.add(f"{name}.{next(iter(node[leaf]))}")  # said at the form's field
            else:
                node[leaf] = value
    if collisions:
        raise FormErrors({name: translate(lang, "v.invalid") for name in sorted(collisions)})
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            errors.setdefault(where, translate(lang, _TYPES.get(e.get("type", ""), "v.invalid")))
        raise FormErrors(errors) from exc


def form_errors(error: RegistryError, page: Page, known: set[str] | None = None) -> FormErrors:
    """A service's refusal as the message next to the field it names (or above the form)."""
    where = error.field or ""
    if known is not None and where not in known:
        where = ""
    return FormErrors({where: page.message(error)})


def choice(enum: type[E], raw: str | None, *, lang: str, field: str) -> E | None:
    """A filter's value from a query string: blank is no filter (a form's "all" sends an
    empty value); anything else must be one of the enum's values."""
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        raise FormErrors({field: translate(lang, "v.choice")}) from None


def check_purpose(page: Page, raw: str | None) -> str:
    """A purpose stated to reveal full data: required here, else the API's rule."""
    try:
        purpose = parse_purpose(raw, max_length=page.registry.settings.purpose_max_length,
                                field="purpose")
    except Invalid:
        purpose = None
    if purpose is None:
        raise FormErrors({"purpose": page.t("v.purpose")})
    return purpose


def stated_purpose(page: Page, form: dict[str, str]) -> str | None:
    """The purpose a form carries — stated on the page it was posted from (a hidden field,
    so a sealed case's page keeps working under it), or typed on a new case's form —
    checked as when it was stated; ``None`` when blank. Taken out of ``form``, whose other
    fields are the schema's. The service records it in the audit event."""
    raw = form.pop("purpose", "")
    return check_purpose(page, raw) if raw.strip() else None


# --- record pages ---------------------------------------------------------------------------


def prefixed(errors: dict[str, str], prefix: str) -> dict[str, str]:
    """A form's errors under the names of a form whose fields are ``prefix.field`` (those
    above the form stay there)."""
    return {f"{prefix}{k}" if k else "": v for k, v in errors.items()}


# A page that can be shown again with errors, under a purpose:
# ``show(page, [record_id,] *, purpose=, errors=, values=, status=, done=)``.
Show = Callable[..., HTMLResponse]


def reveal(page: Page, form: dict[str, str], show: Show, *record: Any) -> HTMLResponse:
    """A page shown again under the purpose stated on it; a purpose that will not do is said
    next to its field, on the page as it was."""
    try:
        purpose = check_purpose(page, form.get("purpose"))
    except FormErrors as exc:
        return show(page, *record, errors=exc.errors, status=422)
    return show(page, *record, purpose=purpose)


def write_on_page(page: Page, form: dict[str, str], record_id: Any, *, prefix: str,
                  schema: type[M], action: Callable[..., object], show: Show, address: str,
                  done: str, purposed: bool = False,
                  conflict_at_field: bool = False) -> Response:
    """A form on a record's page (its fields named ``prefix.field``): parsed, written through
    the gate — ``action(vault, record_id, data, purpose=...)`` — and on refusal the page
    again with the message next to the field; on success the page at ``address`` with the
    ``done`` notice.

    A page that takes a purpose (``purposed``) writes under the one stated on it, if any,
    and a page shown under a purpose is shown again under it, not redirected to (a sealed
    case has no page without one). A conflict is the record's state, not a typo, so it is
    said above the forms unless ``conflict_at_field``."""
    purpose = None
    if purposed:
        try:
            purpose = stated_purpose(page, form)
        except FormErrors as exc:
            return show(page, record_id, errors={"": exc.errors["purpose"]}, status=422)
    values = {k: v for k, v in form.items() if k.startswith(prefix)}
    try:
        data = parse(schema, {k.removeprefix(prefix): v for k, v in values.items()},
                     lang=page.lang)
        with page.vault() as vault:
            action(vault, record_id, data, purpose=purpose)
            vault.commit()
    except FormErrors as exc:
        return show(page, record_id, purpose=purpose, errors=prefixed(exc.errors, prefix),
                    values=values, status=422)
    except (Invalid, Conflict) as exc:
        at_field = exc.field and (conflict_at_field or isinstance(exc, Invalid))
        where = f"{prefix}{exc.field}" if at_field else ""
        return show(page, record_id, purpose=purpose, errors={where: page.message(exc)},
                    values=values, status=exc.status)
    if purpose:
        return show(page, record_id, purpose=purpose, done=done)
    return redirect(f"{address}?done={done}")
