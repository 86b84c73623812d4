"""Every page asks for a session unless listed public, and every form post checks the form
token: proven by walking the pages' routes (tests/test_route_matrix.py hands /web over)."""

from __future__ import annotations

import re
import uuid

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from registry.web import PREFIX, PUBLIC_PAGES
from tests.conftest import COMMUNITY_A
from tests.web.conftest import signed_in


def _web_app(app):
    [mount] = [r for r in app.routes if isinstance(r, Mount) and r.path == PREFIX]
    return mount.app


def _pages(app):
    for route in iter_route_contexts(_web_app(app).routes):
        if isinstance(route.original_route, APIRoute):
            for method in sorted(route.methods):
                yield method, route.path
        else:
            yield "GET", route.path


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(uuid.uuid4()), path)


def test_every_page_needs_a_session_unless_public(client):
    seen = set()
    for method, path in _pages(client.app):
        seen.add(path)
        if path in PUBLIC_PAGES:
            continue
        response = client.request(method, PREFIX + _fill(path), follow_redirects=False)
        assert response.status_code == 303, f"{method} {path}: {response.status_code}"
        assert response.headers["location"].startswith(f"{PREFIX}/sign-in"), (method, path)
    assert not PUBLIC_PAGES - seen, f"PUBLIC_PAGES lists no route: {PUBLIC_PAGES - seen}"


def test_every_form_post_checks_the_form_token(registry, client):
    signed_in(registry, client, "police", COMMUNITY_A)
    posts = [path for method, path in _pages(client.app) if method == "POST"]
    assert posts
    for path in posts:
        response = client.post(PREFIX + _fill(path), data={"csrf_token": "forged"},
                               follow_redirects=False)
        assert response.status_code == 403, f"POST {path}: {response.status_code}"
