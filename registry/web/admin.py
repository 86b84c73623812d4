"""The administrators' pages: accounts and roles (add, disable, reset a password), the key
status and the retention plan. No personal data: the user, key and retention stores through
the gate, as the API routes call them."""

from __future__ import annotations

from fastapi import APIRouter

from registry.accounts.schemas import PasswordReset, UserCreate
from registry.errors import Conflict, Invalid, NotFound
from registry.security.authz import Role
from registry.web.kit import PREFIX, FormDep, FormErrors, Page, PageDep, parse, redirect

router = APIRouter()

_DONE = ("user.saved", "user.disabled", "user.reset")


def _admin(page: Page, *, values: dict | None = None, errors: dict | None = None,
           status: int = 200, done: str | None = None, reset_errors: dict | None = None):
    with page.vault() as vault:
        users = vault.users.list()
        keys = vault.keys.status()
        today = vault.clock.today()
        plan = vault.retention.plan(today)
        past = vault.retention.audit_past_retention(today)
        vault.commit()
    return page.render("admin.html", status=status, users=users, keys=keys, plan=plan,
                       past=past, today=today, values=values or {}, errors=errors or {},
                       reset_errors=reset_errors or {},
                       roles=[(r.value, page.t(f"role.{r.value}")) for r in Role],
                       done=done if done in _DONE else None)


@router.get("/admin")
def admin(page: PageDep, done: str | None = None):
    return _admin(page, done=done)


@router.post("/admin/users")
def add_user(page: PageDep, form: FormDep):
    values = {k: form.get(k, "") for k in ("username", "password", "role",
                                           "jurisdiction_code")}
    try:
        data = parse(UserCreate, values, lang=page.lang)
        with page.vault() as vault:
            vault.users.add(username=data.username, password=data.password, role=data.role,
                            jurisdiction_code=data.jurisdiction_code, must_change_password=True)
            vault.commit()
    except FormErrors as exc:
        return _admin(page, values=values | {"password": ""}, errors=exc.errors, status=422)
    except (Invalid, Conflict, NotFound) as exc:
        where = exc.field if exc.field in values else ""
        return _admin(page, values=values | {"password": ""}, status=exc.status,
                      errors={where: page.message(exc)})
    return redirect(f"{PREFIX}/admin?done=user.saved")


@router.post("/admin/users/{username}/disable")
def disable_user(page: PageDep, form: FormDep, username: str):
    with page.vault() as vault:
        vault.users.disable(username)
        vault.commit()
    return redirect(f"{PREFIX}/admin?done=user.disabled")


@router.post("/admin/users/{username}/password")
def reset_password(page: PageDep, form: FormDep, username: str):
    try:
        data = parse(PasswordReset, {"password": form.get("password", "")}, lang=page.lang)
        with page.vault() as vault:
            vault.users.reset_password(username, data.password)
            vault.commit()
    except FormErrors:
        return _admin(page, status=422, reset_errors={username: page.t("v.password")})
    except (Invalid, Conflict, NotFound) as exc:
        # Next to the user's reset form; for a user the list does not show (gone, or
        # outside the administrator's area: the same words), above the list.
        return _admin(page, status=exc.status, reset_errors={username: page.message(exc)})
    return redirect(f"{PREFIX}/admin?done=user.reset")
