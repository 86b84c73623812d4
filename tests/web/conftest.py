"""Helpers of the page tests: signing in through the pages with the TestClient (on the
rolled-back registry of tests/conftest.py, both backends)."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD, make_user

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no form token on the page"
    return match[1]


def web_sign_in(client, username: str, password: str = PASSWORD):
    page = client.get("/web/sign-in")
    return client.post("/web/sign-in", data={"csrf_token": csrf_of(page.text),
                                             "username": username, "password": password,
                                             "next": "/web/"}, follow_redirects=False)


def signed_in(registry, client, role: str, scope: str) -> str:
    """A new account of ``role`` in ``scope``, signed in on ``client``; its form token."""
    user = make_user(registry, None, role, scope)
    response = web_sign_in(client, user.username)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/web/").text)
