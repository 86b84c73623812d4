"""Sign-in and accounts. The sign-in routes pass the peer address to the authenticator for
its per-address throttle: behind a reverse proxy that is the proxy, unless
REGISTRY_FORWARDED_ALLOW_IPS lets the server take the client's from X-Forwarded-For."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import JSONResponse

from registry.accounts.schemas import (
    Login,
    Me,
    PasswordChange,
    PasswordReset,
    TokenRead,
    UserCreate,
    UserRead,
)
from registry.deps import ActorDep, RegistryDep, TokenDep, VaultDep, client_address
from registry.errors import Locked, TooManyAttempts

UsernamePath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]

auth_router = APIRouter(prefix="/auth", tags=["auth 登录"])
users_router = APIRouter(prefix="/users", tags=["users 用户"])


def _refusal(exc: Locked | TooManyAttempts) -> JSONResponse:
    """The error as the app's handler renders it, with a Retry-After header."""
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status,
                        headers={"Retry-After": str(exc.extra["retry_after"])})


@auth_router.post("/token", response_model=TokenRead,
                  responses={423: {"description": "this username is locked for a while"},
                             429: {"description": "too many failures from this address"}})
def sign_in(data: Login, registry: RegistryDep, request: Request) -> TokenRead | JSONResponse:
    """Exchange username and password for a bearer token (idle timeout, absolute lifetime).
    Repeated failures lock the username (423), whether or not it names an account, and
    throttle the client address (429); both say when to retry (Retry-After)."""
    try:
        token, expires = registry.auth.login(data.username, data.password,
                                             request_id=request.state.request_id,
                                             client_address=client_address(request))
    except (Locked, TooManyAttempts) as exc:
        return _refusal(exc)
    return TokenRead(access_token=token, expires_at=expires.isoformat(),
                     idle_timeout_minutes=registry.settings.token_idle_minutes)


@auth_router.post("/password", status_code=status.HTTP_204_NO_CONTENT, response_model=None,
                  responses={423: {"description": "this username is locked for a while"},
                             429: {"description": "too many failures from this address"}})
def change_password(data: PasswordChange, registry: RegistryDep, request: Request
                    ) -> JSONResponse | None:
    """Change your own password with the current one — required after an administrator's
    reset; revokes your tokens. Failures count like sign-in failures."""
    try:
        registry.auth.change_password(data.username, data.password, data.new_password,
                                      request_id=request.state.request_id,
                                      client_address=client_address(request))
    except (Locked, TooManyAttempts) as exc:
        return _refusal(exc)
    return None


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(registry: RegistryDep, token: TokenDep) -> None:
    """Revoke the token."""
    registry.auth.logout(token)


@auth_router.get("/me", response_model=Me)
def me(actor: ActorDep) -> Me:
    """Who the token belongs to."""
    return Me(username=actor.username, role=actor.role, jurisdiction_code=actor.scope)


@users_router.get("", response_model=list[UserRead])
def list_users(vault: VaultDep) -> list[UserRead]:
    """Accounts within the administrator's jurisdiction."""
    return vault.users.list()


@users_router.post("", status_code=status.HTTP_201_CREATED, response_model=UserRead)
def add_user(data: UserCreate, vault: VaultDep) -> UserRead:
    """Create an account with one role inside one jurisdiction; its user must choose a new
    password at the first sign-in (POST /auth/password)."""
    return vault.users.add(username=data.username, password=data.password, role=data.role,
                           jurisdiction_code=data.jurisdiction_code, must_change_password=True)


@users_router.post("/{username}/disable", response_model=UserRead)
def disable_user(username: UsernamePath, vault: VaultDep) -> UserRead:
    """Disable an account and revoke its tokens."""
    return vault.users.disable(username)


@users_router.post("/{username}/password", response_model=UserRead)
def reset_password(username: UsernamePath, data: PasswordReset, vault: VaultDep) -> UserRead:
    """Set a new password, unlock, and revoke existing tokens."""
    return vault.users.reset_password(username, data.password)
