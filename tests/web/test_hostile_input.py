"""Hostile or odd input gets a page that says what is wrong, never a bare 500."""

from __future__ import annotations

import re

from tests.conftest import COMMUNITY_A
from tests.web.conftest import csrf_of, signed_in
from tests.web.test_role_pages import _rental_form


def test_a_form_token_that_is_not_ascii_is_refused_not_an_error(registry, client):
    signed_in(registry, client, "police", COMMUNITY_A)
    refused = client.post("/web/sign-out", data={"csrf_token": "令牌é"})
    assert refused.status_code == 403 and "已拒绝提交" in refused.text
    client.get("/web/sign-in")  # a pre-session cookie
    public = client.post("/web/sign-in", data={"csrf_token": "令牌é", "username": "x",
                                                "password": "y"})
    assert public.status_code == 403 and "已拒绝提交" in public.text


def test_a_superscript_digit_is_not_a_whole_number(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    odd = client.post("/web/rentals/new", data={"csrf_token": csrf,
                                                **_rental_form(units="²")})
    assert odd.status_code == 422
    assert re.search(r'id="f-units-err"[^>]*>须为整数', odd.text)


def test_a_field_and_its_own_subfield_together_are_a_form_error(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    # Both orders: the plain name first, then the dotted one; and the other way round.
    first = client.post("/web/rentals/new", data={"csrf_token": csrf, "landlord": "x",
                                                  **_rental_form()})
    assert first.status_code == 422
    assert re.search(r'id="f-landlord-name-err"[^>]*>无效', first.text)
    then = client.post("/web/rentals/new", data={"csrf_token": csrf, **_rental_form(),
                                                 "landlord": "x"})
    assert then.status_code == 422
    assert re.search(r'id="f-landlord-name-err"[^>]*>无效', then.text)
    assert csrf_of(then.text)


def test_pager_links_carry_the_filters_url_encoded(registry, client):
    signed_in(registry, client, "auditor", COMMUNITY_A)
    page = client.get("/web/audit", params={"actor": "a&outcome=x#y", "page": "2"})
    assert page.status_code == 200
    assert 'href="?actor=a%26outcome%3Dx%23y&amp;page=1"' in page.text


def test_a_post_over_the_size_limit_is_a_page_and_the_api_keeps_its_json(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    too_big = "x" * (registry.settings.max_request_bytes + 1)
    page = client.post("/web/rentals/new", data={"csrf_token": csrf, "address": too_big})
    assert page.status_code == 413
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    api = client.post("/rentals", content=too_big, headers={"content-type": "application/json"})
    assert api.status_code == 413 and api.json()["error"]["code"] == "too_large"


def test_web_sign_in_counts_failures_per_address_too(registry, client):
    strict = registry.settings.model_copy(update={"sign_in_address_failures": 2})
    registry.auth.settings = registry.auth.limits.settings = strict
    for attempt in range(2):
        client.get("/web/sign-in")
        refused = client.post("/web/sign-in", data={
            "csrf_token": csrf_of(client.get("/web/sign-in").text),
            "username": f"nobody-{attempt}", "password": "wrong-password"})
        assert refused.status_code == 401
    throttled = client.post("/web/sign-in", data={
        "csrf_token": csrf_of(client.get("/web/sign-in").text),
        "username": "someone-else", "password": "wrong-password"})
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
