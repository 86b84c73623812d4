"""Sign-in, session cookie, form tokens, headers, language: the pages' foundation."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from registry.api import create_app
from tests.conftest import COMMUNITY_A, COUNTY, make_user
from tests.web.conftest import csrf_of, signed_in, web_sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "registry" / "web" / "templates"


def test_pages_ask_for_sign_in_first(client):
    response = client.get("/web/?tab=a", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/web/sign-in?next=/web/%3Ftab%3Da"


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    response = web_sign_in(client, user.username)
    assert response.status_code == 303 and response.headers["location"] == "/web/"
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("registry_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/web" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test below
    home = client.get("/web/")
    assert home.status_code == 200 and user.username in home.text
    token = client.cookies.get("registry_session")
    out = client.post("/web/sign-out", data={"csrf_token": csrf_of(home.text)},
                      follow_redirects=False)
    assert out.headers["location"] == "/web/sign-in?done=signed_out"
    # The token itself is revoked, not just the cookie dropped.
    client.cookies.set("registry_session", token, path="/web")
    again = client.get("/web/", follow_redirects=False)
    assert again.status_code == 303 and "expired=1" in again.headers["location"]


def test_the_cookie_is_secure_over_https(registry):
    user = make_user(registry, None, "police", COMMUNITY_A)
    with TestClient(create_app(registry), base_url="https://testserver") as client:
        response = web_sign_in(client, user.username)
        cookie = next(c for c in response.headers.get_list("set-cookie")
                      if c.startswith("registry_session="))
        assert "Secure" in cookie


def test_the_secure_flag_follows_the_cookie_secure_setting(registry, monkeypatch):
    """REGISTRY_COOKIE_SECURE: auto (Secure in production, and over HTTPS), true, false —
    not the request's scheme alone. Seen on the sign-in form's pre-session cookie, set the
    same way as the session's (over plain HTTP a Secure one never comes back, so no sign-in
    follows)."""

    def secure(base_url: str, **settings) -> bool:
        for name, value in settings.items():
            monkeypatch.setattr(registry.settings, name, value)
        with TestClient(create_app(registry), base_url=base_url) as client:
            [cookie] = client.get("/web/sign-in").headers.get_list("set-cookie")
        assert cookie.startswith("registry_presession=")
        return "Secure" in cookie

    assert not secure("http://testserver", cookie_secure="auto", environment="test")
    assert secure("https://testserver", cookie_secure="auto", environment="development")
    assert secure("http://testserver", cookie_secure="auto", environment="production")
    assert secure("http://testserver", cookie_secure="true", environment="test")
    assert not secure("https://testserver", cookie_secure="false", environment="production")


def test_a_wrong_password_and_then_the_lockout_are_said_plainly(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    wrong = web_sign_in(client, user.username, "not-the-password")
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    for _ in range(registry.settings.max_failed_logins):
        locked = web_sign_in(client, user.username, "not-the-password")
    locked = web_sign_in(client, user.username, "not-the-password")
    assert locked.status_code == 423
    assert "账户已暂时锁定" in locked.text and "之后再试" in locked.text


def test_a_forged_or_stale_post_is_refused(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    # No token, a wrong one: refused with a page that says why; nothing is done.
    for data in ({}, {"csrf_token": "0" * 64}):
        refused = client.post("/web/sign-out", data=data, follow_redirects=False)
        assert refused.status_code == 403 and "已拒绝提交" in refused.text
    assert client.get("/web/", follow_redirects=False).status_code == 200  # still signed in
    # A sign-in form without its pre-session cookie (posted from elsewhere) is refused too.
    client.cookies.delete("registry_presession", path="/web")
    forged = client.post("/web/sign-in", data={"csrf_token": csrf, "username": "x",
                                               "password": "y"})
    assert forged.status_code == 403
    # After sign-out the old form token is stale: the post asks for a sign-in instead.
    client.post("/web/sign-out", data={"csrf_token": csrf})
    stale = client.post("/web/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert stale.status_code == 303 and "/web/sign-in" in stale.headers["location"]


def test_pages_forbid_inline_script_and_outside_sources(client):
    response = client.get("/web/sign-in")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert "<script>" not in text and " style=" not in text and "http" not in text, (
            f"{template.name}: inline script or style, or an outside address")


def test_the_language_switch(registry, client):
    signed_in(registry, client, "police", COMMUNITY_A)
    assert "出租房屋" in client.get("/web/").text
    switched = client.get("/web/lang/en?next=/web/", follow_redirects=False)
    assert switched.headers["location"] == "/web/"
    page = client.get("/web/")
    assert "Rentals" in page.text and '<html lang="en">' in page.text
    # Only paths of the pages are followed after the switch.
    away = client.get("/web/lang/zh?next=//evil.example/x", follow_redirects=False)
    assert away.headers["location"] == "/web/"


def test_a_reset_password_is_changed_on_the_pages(registry, client):
    from registry.vault.accounts import system_actor

    user = make_user(registry, None, "police", COMMUNITY_A)
    with registry.vault(system_actor("tests")) as vault:
        vault.users.reset_password(user.username, "admin-chosen-password")
        vault.commit()
    asked = web_sign_in(client, user.username, "admin-chosen-password")
    assert asked.status_code == 200 and "请先设置新密码" in asked.text
    changed = client.post("/web/password", data={
        "csrf_token": csrf_of(asked.text), "username": user.username,
        "password": "admin-chosen-password", "new_password": "my-own-new-password"},
        follow_redirects=False)
    assert changed.status_code == 303
    assert web_sign_in(client, user.username, "my-own-new-password").status_code == 303


def test_an_unexpected_error_is_a_page_naming_the_request(registry, client, monkeypatch):
    from registry.web import field

    signed_in(registry, client, "police", COMMUNITY_A)

    def broken(*args, **kwargs):
        raise RuntimeError("secret value 330199197803150017")

    monkeypatch.setattr(field.rentals, "list_rentals", broken)
    response = client.get("/web/rentals")
    assert response.status_code == 500
    assert "内部错误（请求编号" in response.text and "330199" not in response.text
    assert response.headers["x-request-id"] in response.text


def test_the_expired_message_names_the_idle_timeout_setting(registry, client):
    page = client.get("/web/sign-in?expired=1")
    minutes = registry.settings.token_idle_minutes
    assert f"超过{minutes}分钟未操作" in page.text


def test_serve_trusts_forwarded_headers_only_from_the_configured_proxy(monkeypatch):
    """`registry serve` passes REGISTRY_FORWARDED_ALLOW_IPS to uvicorn, so a TLS-terminating
    proxy's X-Forwarded-Proto makes the cookie Secure; unset, no proxy is trusted."""
    from typer.testing import CliRunner

    from registry import cli

    seen: list[dict] = []
    monkeypatch.setattr(cli, "open_registry", lambda: None)
    monkeypatch.setattr(cli, "create_app", lambda registry: "app")
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: seen.append(kwargs))
    runner = CliRunner()
    assert runner.invoke(cli.app, ["serve"], env={"REGISTRY_FORWARDED_ALLOW_IPS": ""}
                         ).exit_code == 0
    assert runner.invoke(cli.app, ["serve"],
                         env={"REGISTRY_FORWARDED_ALLOW_IPS": "10.0.0.5"}).exit_code == 0
    assert seen[0]["proxy_headers"] is False
    assert seen[1]["proxy_headers"] is True and seen[1]["forwarded_allow_ips"] == "10.0.0.5"


def test_every_label_the_pages_name_is_in_both_languages():
    """A key missing from the catalogue would show as the key itself."""
    import re

    from registry.web.i18n import MESSAGES

    sources = [*TEMPLATES.glob("*.html"), *TEMPLATES.parent.glob("*.py")]
    literal = re.compile(r"""\bt\(\s*['"]([a-z_][a-z0-9_.]*)['"]\s*[,)]""")
    named = {key for path in sources for key in literal.findall(path.read_text())}
    assert len(named) > 100
    missing = sorted(named - set(MESSAGES))
    assert not missing, missing
    assert all(zh and en for zh, en in MESSAGES.values())


def test_every_error_page_carries_the_pages_headers(registry, client, monkeypatch):
    """Refusals, a missing page, a refused form and an unexpected error: each page keeps the
    Content-Security-Policy and the opener policy (the 500 is rendered outside the usual
    middleware)."""
    from registry.web import CSP, field

    csrf = signed_in(registry, client, "police", COMMUNITY_A)

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    pages = {403: client.get("/web/corrections/board"),
             404: client.get("/web/no-such-page")}
    pages["csrf"] = client.post("/web/sign-out", data={"csrf_token": "forged"})
    monkeypatch.setattr(field.rentals, "list_rentals", broken)
    pages[500] = client.get("/web/rentals")
    assert csrf and [pages[k].status_code for k in (403, 404, "csrf", 500)] == [
        403, 404, 403, 500]
    for name, response in pages.items():
        assert response.headers.get("content-security-policy") == CSP, name
        assert response.headers.get("cross-origin-opener-policy") == "same-origin", name
        assert response.headers["content-type"].startswith("text/html"), name


def test_signing_in_ends_the_browsers_previous_session(registry, client):
    def alone(token: str) -> int:
        """The status of the start page for another browser holding only ``token``."""
        other = TestClient(client.app)
        other.cookies.set("registry_session", token, path="/web")
        return other.get("/web/", follow_redirects=False).status_code

    first = make_user(registry, None, "police", COMMUNITY_A)
    second = make_user(registry, None, "police", COMMUNITY_A)
    assert web_sign_in(client, first.username).status_code == 303
    old = client.cookies.get("registry_session")
    assert alone(old) == 200
    assert web_sign_in(client, second.username).status_code == 303
    new = client.cookies.get("registry_session")
    assert new != old and alone(old) == 303 and alone(new) == 200
    # A refused sign-in ends the previous session too, and drops its cookie.
    refused = web_sign_in(client, first.username, "not-the-password")
    assert refused.status_code == 401 and "registry_session" not in dict(client.cookies)
    assert alone(new) == 303


def test_the_language_link_of_a_page_answering_a_post_leads_to_a_page(registry, client):
    """A post's address takes no GET (405): the link leads to the nearest page that does."""
    import re

    csrf = signed_in(registry, client, "police", COMMUNITY_A)

    def link(response) -> str:
        return re.search(r'href="/web/lang/en\?next=([^"]*)"', response.text)[1]

    assert link(client.get("/web/rentals?status=active")) == "/web/rentals%3Fstatus%3Dactive"
    refused = client.post("/web/rentals/new", data={"csrf_token": csrf})
    assert refused.status_code == 422 and link(refused) == "/web/rentals/new"
    searched = client.post("/web/search", data={"csrf_token": csrf, "id_number": "1"})
    assert link(searched) == "/web/search"
    signed_in(registry, client, "admin", COUNTY)
    added = client.post("/web/admin/users", data={"csrf_token": csrf_of(
        client.get("/web/admin").text), "username": "x"})
    assert added.status_code == 422 and link(added) == "/web/admin"
    assert client.get(link(added)).status_code == 200


def test_the_page_for_a_post_over_the_size_limit():
    """What the API's outermost layer sends for a page's oversized post (it refuses the post
    before the pages see it): a page in the reader's language with the pages' headers."""
    from registry.web import CSP, too_large_page

    scope = {"type": "http", "method": "POST", "path": "/web/rentals/new", "query_string": b"",
             "root_path": "", "headers": [(b"cookie", b"registry_lang=en")]}
    status, body, headers = too_large_page(scope, 1 << 20)
    text = body.decode()
    assert status == 413 and "too large (at most 1024 KB)" in text and "<html" in text
    assert 'href="/web/lang/zh?next=/web/"' in text  # not back to the post's address
    assert (b"content-security-policy", CSP.encode()) in headers
