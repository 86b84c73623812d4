"""Every page asks for a session unless listed public, and every form post checks the form
token: proven by walking the pages' routes (tests/test_route_matrix.py hands /web over)."""

from __future__ import annotations

import re
import uuid

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from registry.web import PREFIX, PUBLIC_PAGES
from tests.conftest import COMMUNITY_A, COUNTY
from tests.web.conftest import signed_in

REFUSED = "表单已过期或来源不明，已拒绝提交"


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


# Who posts to each page when the form-token check is tried: a role the page serves, so that
# a missing check would show (the gate would not refuse it first).
_POSTERS = {"/corrections": "corrections", "/releases": "justice", "/audit": "auditor",
            "/admin": "admin"}


def _poster(path: str) -> str:
    return next((role for start, role in _POSTERS.items() if path.startswith(start)),
                "police")


def test_every_form_post_checks_the_form_token(registry, client):
    """A forged token gets the form-token refusal itself (not a gate's 403), posted by a
    role the page serves; the public forms with their pre-session cookie in place."""
    posts = [path for method, path in _pages(client.app) if method == "POST"]
    assert posts
    for role in ["police", *_POSTERS.values()]:
        mine = [p for p in posts if p not in PUBLIC_PAGES and _poster(p) == role]
        assert mine, role
        signed_in(registry, client, role, COUNTY if role != "police" else COMMUNITY_A)
        for path in mine:
            response = client.post(PREFIX + _fill(path), data={"csrf_token": "forged"},
                                   follow_redirects=False)
            assert response.status_code == 403, f"POST {path}: {response.status_code}"
            assert REFUSED in response.text, f"POST {path}: not the form-token refusal"
    public = [p for p in posts if p in PUBLIC_PAGES]
    assert sorted(public) == ["/password", "/sign-in"]
    for path in public:
        client.cookies.clear()
        assert client.get(PREFIX + path).cookies.get("registry_presession")
        response = client.post(PREFIX + path, data={"csrf_token": "forged",
                                                    "username": "x", "password": "y"})
        assert response.status_code == 403 and REFUSED in response.text, f"POST {path}"
