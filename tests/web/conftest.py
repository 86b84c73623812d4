"""Helpers of the page tests: signing in through the pages with the TestClient (on the
rolled-back registry of tests/conftest.py, both backends)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from registry import demo
from registry.api import create_app
from registry.migrate import upgrade
from registry.security.crypto import LocalKeyFile
from registry.vault.runtime import Registry
from tests.conftest import PASSWORD, id_number, make_user, postgres_database, test_settings

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


# --- the browser tests: a real server over a demo county, driven by Debian's Chromium -------




CHROMIUM = Path("/usr/bin/chromium")
# Screenshots of each main page at desktop and phone width (README: "Web pages"); written by
# the SQLite run, gitignored.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
PASSWORDS = {u.username: u.password for u in demo.demo_users()}


@dataclass(frozen=True)
class LiveServer:
    url: str
    backend: str
    registry: Registry


def _overdue_cases(registry: Registry) -> None:
    """Two cases that stopped checking in (the small demo may have none overdue)."""
    from datetime import timedelta

    from registry.corrections import service as corrections
    from registry.corrections.schemas import CaseCreate
    from registry.vault.base import Actor

    today = registry.clock.today()
    loader = Actor(None, "web-tests", "corrections", demo.COUNTY)
    with registry.vault(loader) as vault:
        for n, name in enumerate(["孙七", "钱八"]):
            corrections.open_case(vault, CaseCreate(
                name=name, id_number=id_number(900 + n), jurisdiction_code="330199001001001",
                category="probation", deciding_body="清河县人民法院",
                judgment_ref=f"(2026)清刑初{900 + n}号",
                effective_on=today - timedelta(days=60), supervision_start=today - timedelta(
                    days=60), supervision_end=today + timedelta(days=300),
                reported_on=today - timedelta(days=55 - n), officer="corrections"))
        vault.commit()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def live_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """The whole app served by uvicorn on a free loopback port in a thread, over a small demo
    county committed to its own database (a file, or a PostgreSQL database of its own): the
    rolled-back test transaction cannot be shared with a server thread."""
    if not CHROMIUM.exists():
        pytest.skip("browser tests skipped: /usr/bin/chromium is not installed "
                    "(make chromium, as root, installs Debian's package)")
    pytest.importorskip("playwright.sync_api", reason="browser tests skipped: playwright "
                        "is not installed (pip install -e '.[dev]')")
    path = tmp_path_factory.mktemp(f"web-{request.param}")
    with ExitStack() as stack:
        url = (f"sqlite:///{path / 'registry.sqlite3'}" if request.param == "sqlite"
               else stack.enter_context(postgres_database("registry_web")))
        upgrade(url)
        LocalKeyFile.create(path / "registry.key")
        registry = Registry(test_settings(path, database_url=url, timezone="Asia/Shanghai"))
        demo.build(registry, scale=0.05)
        _overdue_cases(registry)
        # A socket listening before the server thread starts: the browser's first request
        # waits in its backlog, so nothing has to wait for the server to come up.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(registry), log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        yield LiveServer(f"http://127.0.0.1:{port}", request.param, registry)
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        registry.db.dispose()


@pytest.fixture(scope="session")
def browser(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def web(browser, live_server):
    """A fresh browser context (no cookies) and page per test, on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Error statuses are the pages' answers (a 422 form, a 403 refusal): not script errors.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)
    yield page
    context.close()
    assert not errors, f"script errors or CSP violations in the browser: {errors}"


def browser_sign_in(page, username: str) -> None:
    page.goto("/web/sign-in")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORDS[username])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/web/")


def screenshot(page, live_server, name: str) -> None:
    """The page at desktop and at phone width, into screenshots/ (SQLite run only)."""
    if live_server.backend != "sqlite":
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)
