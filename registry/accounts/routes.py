from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from registry.accounts.schemas import (
    Login,
    Me,
    PasswordChange,
    PasswordReset,
    TokenRead,
    UserCreate,
    UserRead,
)
from registry.deps import ActorDep, RegistryDep, TokenDep, VaultDep

UsernamePath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]

auth_router = APIRouter(prefix="/auth", tags=["auth 登录"])
users_router = APIRouter(prefix="/users", tags=["users 用户"])


@auth_router.post("/token", response_model=TokenRead)
def sign_in(data: Login, registry: RegistryDep, request: Request) -> TokenRead:
    """Exchange username and password for a bearer token (idle timeout, absolute lifetime)."""
    token, expires = registry.auth.login(data.username, data.password,
                                         request_id=request.state.request_id)
    return TokenRead(access_token=token, expires_at=expires.isoformat(),
                     idle_timeout_minutes=registry.settings.token_idle_minutes)


@auth_router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(data: PasswordChange, registry: RegistryDep, request: Request) -> None:
    """Change your own password with the current one — required after an administrator's
    reset; revokes your tokens."""
    registry.auth.change_password(data.username, data.password, data.new_password,
                                  request_id=request.state.request_id)


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
