"""FastAPI dependencies: the running registry, the signed-in actor, a vault per request, the
declared purpose. Routes take these as ``Annotated`` aliases and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.errors import Unauthenticated
from registry.validation import parse_purpose
from registry.vault.base import Actor
from registry.vault.gate import Vault
from registry.vault.runtime import Registry

_bearer = HTTPBearer(auto_error=False, description="token from POST /auth/token")


def client_address(request: Request) -> str | None:
    """The peer the per-address sign-in throttle counts: a proxy's, unless uvicorn is told
    to trust its forwarded headers (REGISTRY_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


def get_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("sign-in required", "请先登录")
    return credentials.credentials


TokenDep = Annotated[str, Depends(get_token)]


def get_actor(registry: RegistryDep, token: TokenDep) -> Actor:
    return registry.auth.authenticate(token)


ActorDep = Annotated[Actor, Depends(get_actor)]


def get_vault(registry: RegistryDep, actor: ActorDep, request: Request) -> Iterator[Vault]:
    """One unit of work per request: committed (with its audit events) when the handler
    returns, rolled back when it raises. Runs before the response is sent (scope=function),
    so a failed commit is an error response, never a lost write reported as success."""
    with registry.vault(actor, request_id=request.state.request_id) as vault:
        yield vault
        vault.commit()


VaultDep = Annotated[Vault, Depends(get_vault, scope="function")]


def get_purpose(
    registry: RegistryDep,
    x_purpose: Annotated[str | None, Header(
        description="why full personal data is needed: a case number or a reason "
                    "(URL-encode non-ASCII text)")] = None,
) -> str | None:
    return parse_purpose(None if x_purpose is None else unquote(x_purpose),
                         max_length=registry.settings.purpose_max_length, field="X-Purpose")


PurposeDep = Annotated[str | None, Depends(get_purpose)]
