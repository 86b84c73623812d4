"""Accounts and sign-in through the API (registry/vault/accounts.py, registry/accounts/), and
the ``registry users`` commands against an on-disk SQLite registry."""

from __future__ import annotations

import contextlib
import hashlib
import stat
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from registry.api import create_app
from registry.cli import app as cli
from registry.clock import Clock
from registry.config import get_settings
from registry.db import Database
from registry.errors import Locked, PasswordChangeRequired, Unauthenticated
from registry.migrate import upgrade
from registry.models import AuditEvent, AuthToken, SignInFailure, UserAccount, metadata
from registry.security.crypto import LocalKeyFile
from registry.security.keys import Keyring
from registry.vault.accounts import ADDRESS, NAME, SignInLimits, normalise, system_actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    PASSWORD,
    TREE,
    make_user,
    postgres_database,
    rental_body,
)

NEW_PASSWORD = "a-brand-new-passphrase"
CHOSEN_PASSWORD = "one-only-the-user-knows"


def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/auth/token", json={"username": username, "password": password})


def change_password(client: TestClient, username: str, password: str,
                    new_password: str = CHOSEN_PASSWORD):
    return client.post("/auth/password", json={"username": username, "password": password,
                                               "new_password": new_password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(user) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


def at(registry: Registry, **delta) -> None:
    """Move the registry's fixed clock to FIXED_NOW + delta."""
    registry.clock.fixed = FIXED_NOW + timedelta(**delta)


def rows(registry: Registry, statement) -> list:
    """Rows read in a session of their own, detached so they outlive it."""
    with registry.db.session() as session:
        found = list(session.scalars(statement))
        session.expunge_all()
    return found


def login_events(registry: Registry, username: str) -> list[AuditEvent]:
    return rows(registry, select(AuditEvent).where(
        AuditEvent.actor == username, AuditEvent.action == "login").order_by(AuditEvent.seq))


def change_events(registry: Registry, username: str) -> list[AuditEvent]:
    return rows(registry, select(AuditEvent).where(
        AuditEvent.actor == username, AuditEvent.action == "password-change"
    ).order_by(AuditEvent.seq))


def user_tokens(registry: Registry, user) -> list[AuthToken]:
    return rows(registry, select(AuthToken).where(AuthToken.user_id == user.actor.id))


def stored_user(registry: Registry, username: str) -> UserAccount | None:
    found = rows(registry, select(UserAccount).where(UserAccount.username == username))
    return found[0] if found else None


def error_of(response) -> dict:
    return response.json()["error"]


def name_counter(registry: Registry, username: str) -> SignInFailure | None:
    """The failure counter of a username (an account's or not), found by its keyed hash."""
    digest = registry.auth.limits.digest(NAME, normalise(username))
    found = rows(registry, select(SignInFailure).where(SignInFailure.scope == NAME,
                                                       SignInFailure.digest == digest))
    return found[0] if found else None


def failures(registry: Registry, username: str) -> int:
    counter = name_counter(registry, username)
    return counter.failures if counter else 0


def locked_until(registry: Registry, username: str):
    counter = name_counter(registry, username)
    return counter.locked_until if counter else None


def unknown_actor(registry: Registry, username: str) -> str:
    """How the audit log names a username without an account: by its keyed hash."""
    return "unknown:" + registry.auth.limits.digest(NAME, normalise(username))[:32]


# --- signing in ----------------------------------------------------------------------------


def test_sign_in_returns_an_opaque_token_stored_only_hashed(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A, username="officer.li")
    response = sign_in(client, "officer.li")
    assert response.status_code == 200
    body = response.json()
    token = body["access_token"]
    assert body["token_type"] == "bearer"
    assert body["idle_timeout_minutes"] == registry.settings.token_idle_minutes
    assert body["expires_at"] == (FIXED_NOW + timedelta(hours=8)).isoformat()
    # 256 random bits, URL-safe, nothing readable in it.
    assert len(token) >= 43
    assert "officer" not in token
    assert token != token_of(user)

    tokens = rows(registry, select(AuthToken).where(AuthToken.user_id == user.actor.id))
    assert len(tokens) == 2
    assert hashlib.sha256(token.encode()).hexdigest() in {t.token_hash for t in tokens}
    for values in [[str(getattr(t, c.name)) for c in AuthToken.__table__.columns]
                   for t in tokens]:
        for value in values:
            assert token not in value
            assert token_of(user) not in value


def test_each_sign_in_gives_a_new_token(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    tokens = {sign_in(client, user.username).json()["access_token"] for _ in range(3)}
    assert len(tokens) == 3


def test_me_names_the_signed_in_user(registry, client):
    user = make_user(registry, client, "coordinator", GRID_A1, username="grid.wang")
    response = client.get("/auth/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {"username": "grid.wang", "role": "coordinator",
                               "jurisdiction_code": GRID_A1}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "},
                                     {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}],
                         ids=["none", "empty", "unknown", "basic"])
def test_me_without_a_valid_token_is_401(registry, client, headers):
    response = client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_the_stored_hash_is_not_a_bearer_token(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    [stored] = rows(registry, select(AuthToken.token_hash).where(
        AuthToken.user_id == user.actor.id))
    assert client.get("/auth/me", headers=bearer(stored)).status_code == 401


def test_sign_in_is_audited(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    [event] = login_events(registry, user.username)
    assert event.outcome == "ok"
    assert event.kind == "session"
    assert event.actor_id == user.actor.id
    assert PASSWORD not in event.detail


def test_wrong_password_and_unknown_user_get_the_same_answer(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    wrong = sign_in(client, user.username, "not-the-password")
    unknown = sign_in(client, "nobody-here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong) == error_of(unknown)
    assert error_of(wrong)["message"] == "wrong username or password"
    assert error_of(wrong)["message_zh"] == "用户名或密码错误"
    [_, denied] = login_events(registry, user.username)
    assert denied.outcome == "denied"
    assert login_events(registry, "nobody-here") == []
    [unknown_event] = login_events(registry, unknown_actor(registry, "nobody-here"))
    assert unknown_event.outcome == "denied"
    assert unknown_event.actor_id is None


def test_the_dummy_password_does_not_sign_in_an_unknown_user(registry, client):
    assert sign_in(client, "ghost", "registry-dummy-password").status_code == 401


def test_password_is_case_sensitive(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    assert sign_in(client, user.username, PASSWORD.upper()).status_code == 401


# --- lockout -------------------------------------------------------------------------------


def fail_until_locked(registry, client, username: str) -> None:
    limit = registry.settings.max_failed_logins
    for attempt in range(limit):
        response = sign_in(client, username, f"wrong-{attempt}")
        assert response.status_code == 401, attempt


def test_lockout_after_repeated_failures_even_with_the_right_password(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    limit = registry.settings.max_failed_logins
    for attempt in range(limit - 1):
        assert sign_in(client, user.username, f"wrong-{attempt}").status_code == 401
    assert failures(registry, user.username) == limit - 1
    assert locked_until(registry, user.username) is None
    assert sign_in(client, user.username, "wrong-last").status_code == 401

    locked = sign_in(client, user.username, PASSWORD)
    assert locked.status_code == 423
    assert error_of(locked)["code"] == "locked"
    assert "locked" in error_of(locked)["message"]
    assert "锁定" in error_of(locked)["message_zh"]
    assert error_of(locked)["locked_until"].startswith(
        (FIXED_NOW + timedelta(minutes=registry.settings.lockout_minutes)).isoformat()[:16])

    events = login_events(registry, user.username)
    outcomes = [(e.outcome, e.detail) for e in events]
    assert outcomes[0] == ("ok", "")  # make_user signed in
    assert outcomes[1:limit + 1] == [("denied", "")] * (limit - 1) + [("denied", "locked")]
    assert outcomes[limit + 1] == ("locked", "")


def test_a_success_before_the_limit_resets_the_count(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    limit = registry.settings.max_failed_logins
    for _ in range(2):
        for attempt in range(limit - 1):
            assert sign_in(client, user.username, f"wrong-{attempt}").status_code == 401
        assert sign_in(client, user.username).status_code == 200
    assert name_counter(registry, user.username) is None


def test_lockout_ends_after_lockout_minutes(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    fail_until_locked(registry, client, user.username)
    minutes = registry.settings.lockout_minutes
    at(registry, minutes=minutes - 1)
    assert sign_in(client, user.username).status_code == 423
    at(registry, minutes=minutes)
    assert sign_in(client, user.username).status_code == 200
    # The count starts again from zero: one more failure does not lock.
    assert sign_in(client, user.username, "wrong").status_code == 401
    assert sign_in(client, user.username).status_code == 200


def test_failures_while_locked_do_not_extend_the_lock(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    fail_until_locked(registry, client, user.username)
    at(registry, minutes=10)
    for _ in range(3):
        assert sign_in(client, user.username, "wrong").status_code == 423
    at(registry, minutes=registry.settings.lockout_minutes)
    assert sign_in(client, user.username).status_code == 200


def comparable(response) -> tuple:
    """What a caller sees of an answer, but for the request id (new on every request)."""
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, response.content, headers


@pytest.mark.parametrize("route", ["sign-in", "change"])
def test_a_known_and_an_unknown_name_answer_alike_through_the_lockout(registry, client, route):
    """The finding: the lockout told which usernames exist (401 then 423 for an account, 401
    forever for anything else). Now both lock, with the same status, body and headers, before
    and after — even the right password meets the lock."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    attempt_with = sign_in if route == "sign-in" else change_password
    limit = registry.settings.max_failed_logins
    statuses = []
    for attempt in range(limit + 2):
        password = PASSWORD if attempt == limit + 1 else f"wrong-{attempt}"
        known = attempt_with(client, user.username, password)
        unknown = attempt_with(client, "no-such-user", password)
        assert comparable(known) == comparable(unknown), attempt
        statuses.append(known.status_code)
    assert statuses == [401] * limit + [423, 423]
    locked = unknown
    lockout = registry.settings.lockout_minutes
    assert error_of(locked)["locked_until"] == (FIXED_NOW + timedelta(minutes=lockout)
                                                ).isoformat()
    assert error_of(locked)["retry_after"] == lockout * 60
    assert locked.headers["retry-after"] == str(lockout * 60)


def test_an_unknown_name_is_locked_and_unlocked_like_an_account(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    for name in (user.username, "no-such-user"):
        fail_until_locked(registry, client, name)
    minutes = registry.settings.lockout_minutes
    at(registry, minutes=minutes - 1)
    known, unknown = sign_in(client, user.username), sign_in(client, "no-such-user")
    assert known.status_code == unknown.status_code == 423
    assert known.headers["retry-after"] == unknown.headers["retry-after"] == "60"
    at(registry, minutes=minutes)
    assert sign_in(client, user.username).status_code == 200
    assert sign_in(client, "no-such-user").status_code == 401
    # The count starts again from zero for both.
    assert failures(registry, "no-such-user") == 1
    assert name_counter(registry, user.username) is None


def test_failures_are_counted_per_normalised_name(registry, client):
    """Case and surrounding spaces make no new name: they cannot buy more attempts."""
    user = make_user(registry, None, "police", COMMUNITY_A, username="officer.zhao")
    for index, name in enumerate(["officer.zhao", "Officer.Zhao", " OFFICER.ZHAO ",
                                  "oFFicer.zhao", "officer.ZHAO"]):
        assert sign_in(client, name, f"wrong-{index}").status_code == 401
    assert sign_in(client, user.username).status_code == 423
    for index, name in enumerate(["Ghost.Name", "ghost.name", " GHOST.NAME", "ghost.NAME",
                                  "gHost.name"]):
        assert sign_in(client, name, f"wrong-{index}").status_code == 401
    assert sign_in(client, "ghost.name").status_code == 423


def test_a_failure_count_is_forgotten_lockout_minutes_after_the_last_failure(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    limit = registry.settings.max_failed_logins
    minutes = registry.settings.lockout_minutes
    for attempt in range(limit - 1):
        at(registry, minutes=attempt * (minutes - 1))  # each within the window of the last
        assert sign_in(client, user.username, f"wrong-{attempt}").status_code == 401
    assert failures(registry, user.username) == limit - 1
    at(registry, minutes=(limit - 2) * (minutes - 1) + minutes)
    assert sign_in(client, user.username, "wrong-again").status_code == 401
    assert failures(registry, user.username) == 1


def test_expired_counters_are_pruned_by_later_failures(registry, client):
    for name in ("first-name", "second-name"):
        assert sign_in(client, name, "wrong").status_code == 401
    fail_until_locked(registry, client, "locked-name")
    assert name_counter(registry, "first-name") is not None
    at(registry, minutes=registry.settings.lockout_minutes)
    assert sign_in(client, "later-name", "wrong").status_code == 401
    remaining = rows(registry, select(SignInFailure))
    assert {c.digest for c in remaining if c.scope == NAME} == {
        registry.auth.limits.digest(NAME, "later-name")}


def all_stored_text(registry: Registry) -> str:
    """Every value of every table, as text: what a dump of the database would show."""
    values = []
    with registry.db.session() as session:
        for table in metadata.sorted_tables:
            for row in session.execute(select(table)):
                values.extend(str(value) for value in row)
    return "\n".join(values)


def test_no_unknown_name_or_client_address_is_stored_in_the_clear(registry, client):
    """Neither the counters nor the audit events keep what was typed for a name without an
    account (it may be a password typed in the wrong field), nor where it came from."""
    typed = "Mallory.Probe-7731"
    for attempt in range(registry.settings.max_failed_logins + 1):
        sign_in(client, typed, f"wrong-{attempt}")
    change_password(client, typed, "wrong-change")
    stored = all_stored_text(registry).lower()
    assert typed.lower() not in stored
    assert "testclient" not in stored
    events = rows(registry, select(AuditEvent).where(AuditEvent.action.in_(
        ["login", "password-change"])))
    hashed = unknown_actor(registry, typed)
    assert [(e.action, e.outcome, e.detail) for e in events if e.actor == hashed] == [
        ("login", "denied", "")] * (registry.settings.max_failed_logins - 1) + [
        ("login", "denied", "locked"), ("login", "locked", ""),
        ("password-change", "locked", "")]
    assert all(e.actor_id is None and e.record_id is None for e in events
               if e.actor == hashed)


def test_the_name_key_comes_from_the_key_provider(registry, tmp_path):
    """The counters' HMAC is keyed from the index root: another key file, another digest — a
    dump of the database alone cannot test a guessed name."""
    digest = registry.auth.limits.digest(NAME, "someone")
    assert len(digest) == 64 and digest != hashlib.sha256(b"someone").hexdigest()
    assert digest == registry.auth.limits.digest(NAME, "someone")
    assert digest != registry.auth.limits.digest(ADDRESS, "someone")
    other_keys = SimpleNamespace(provider=LocalKeyFile.create(tmp_path / "other.key"))
    other = SignInLimits(SimpleNamespace(settings=registry.settings, keyring=other_keys))
    assert other.digest(NAME, "someone") != digest


# --- the per-address throttle ----------------------------------------------------------------


@pytest.fixture
def throttle(registry, monkeypatch) -> int:
    """A small per-address limit for these tests."""
    monkeypatch.setattr(registry.settings, "sign_in_address_failures", 3)
    return 3


def from_address(registry: Registry, host: str) -> TestClient:
    return TestClient(create_app(registry), raise_server_exceptions=False, client=(host, 40000))


def test_too_many_failures_from_one_address_are_throttled(registry, client, throttle):
    user = make_user(registry, None, "police", COMMUNITY_A)
    for attempt in range(throttle):  # a different name each time: no name is locked
        assert sign_in(client, f"spray-{attempt}", PASSWORD).status_code == 401
    window = registry.settings.sign_in_address_minutes * 60
    # Now every name is refused from this address, the right password included, alike.
    known, unknown = sign_in(client, user.username), sign_in(client, "spray-new")
    assert comparable(known) == comparable(unknown)
    assert known.status_code == 429
    assert error_of(known)["code"] == "throttled"
    assert error_of(known)["retry_after"] == window
    assert known.headers["retry-after"] == str(window)
    assert "address" in error_of(known)["message"] and "网络地址" in error_of(known)["message_zh"]
    assert change_password(client, user.username, PASSWORD).status_code == 429
    # Another address is not affected.
    with from_address(registry, "198.51.100.7") as elsewhere:
        assert sign_in(elsewhere, user.username).status_code == 200
    # Throttled attempts do not count: the window ends when it would have.
    at(registry, minutes=registry.settings.sign_in_address_minutes - 1)
    throttled = sign_in(client, user.username)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "60"
    at(registry, minutes=registry.settings.sign_in_address_minutes)
    assert sign_in(client, user.username).status_code == 200
    outcomes = [(e.outcome, e.detail) for e in login_events(registry, user.username)]
    assert outcomes == [("throttled", ""), ("ok", ""), ("throttled", ""), ("ok", "")]


def test_the_failure_that_reaches_the_address_limit_is_audited(registry, client, throttle):
    for attempt in range(throttle):
        assert sign_in(client, "spray-name", f"wrong-{attempt}").status_code == 401
    events = login_events(registry, unknown_actor(registry, "spray-name"))
    assert [e.detail for e in events] == ["", "", "address-throttled"]


def test_a_success_does_not_reset_the_address_count(registry, client, throttle):
    """One valid account must not buy an address more guesses at others."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    for attempt in range(throttle - 1):
        assert sign_in(client, f"spray-{attempt}", "wrong").status_code == 401
    assert sign_in(client, user.username).status_code == 200
    assert sign_in(client, "spray-last", "wrong").status_code == 401
    assert sign_in(client, user.username).status_code == 429


def test_the_throttle_can_be_turned_off(registry, client, monkeypatch):
    monkeypatch.setattr(registry.settings, "sign_in_address_failures", 0)
    for attempt in range(registry.settings.max_failed_logins * 8):
        assert sign_in(client, f"spray-{attempt}", "wrong").status_code == 401
    assert not [c for c in rows(registry, select(SignInFailure)) if c.scope != NAME]


def test_without_an_address_only_the_name_counts(registry, throttle):
    """The web sign-in (and the CLI's) may call without one: the per-name lockout still holds."""
    for attempt in range(throttle + 2):
        with pytest.raises(Exception, match="wrong username or password"):
            registry.auth.login(f"spray-{attempt}", "wrong")
    assert not [c for c in rows(registry, select(SignInFailure)) if c.scope != NAME]


def test_admin_password_reset_unlocks(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    user = make_user(registry, client, "police", COMMUNITY_A)
    fail_until_locked(registry, client, user.username)
    listed = {u["username"]: u for u in client.get("/users", headers=admin.headers).json()}
    assert listed[user.username]["locked"] is True

    reset = client.post(f"/users/{user.username}/password", json={"password": NEW_PASSWORD},
                        headers=admin.headers)
    assert reset.status_code == 200, reset.text
    assert reset.json()["locked"] is False
    assert sign_in(client, user.username, PASSWORD).status_code == 401
    # The administrator chose it: the user must replace it before signing in.
    assert sign_in(client, user.username, NEW_PASSWORD).status_code == 403
    assert change_password(client, user.username, NEW_PASSWORD).status_code == 204
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200
    # The tokens issued before the reset are revoked.
    assert client.get("/auth/me", headers=user.headers).status_code == 401


def test_password_reset_refuses_a_short_password(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    user = make_user(registry, client, "police", COMMUNITY_A)
    response = client.post(f"/users/{user.username}/password", json={"password": "short"},
                           headers=admin.headers)
    assert response.status_code == 422
    assert error_of(response)["field"] == "password"
    assert sign_in(client, user.username).status_code == 200


@pytest.fixture
def committed_registry(database_url, settings):
    """A registry whose transactions really commit, into a PostgreSQL database of its own
    (dropped after the test), so concurrent sign-ins meet real row locks."""
    if database_url.startswith("sqlite"):
        pytest.skip("concurrent sign-ins are a PostgreSQL test (SQLite serialises writers)")
    with postgres_database("registry_signin") as url:
        upgrade(url)
        db = Database.from_url(url)
        try:
            yield Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                           clock=Clock(fixed=FIXED_NOW))
        finally:
            db.dispose()


def test_concurrent_failures_lose_no_count_and_never_deadlock(committed_registry,
                                                               monkeypatch):
    """Threads failing at once — on one name, on names of their own, all from one address,
    with expired counters about to be pruned — each count once, and none waits on another
    in a cycle (a deadlock would surface as a 503)."""
    registry = committed_registry
    monkeypatch.setattr(registry.settings, "max_failed_logins", 1000)
    monkeypatch.setattr(registry.settings, "sign_in_address_failures", 1000)
    for name in ("stale-1", "stale-2", "stale-3"):  # expired by the time the threads run
        with pytest.raises(Unauthenticated):
            registry.auth.login(name, "wrong", client_address="192.0.2.9")
    registry.clock.fixed = FIXED_NOW + timedelta(hours=1)
    threads, attempts = 6, 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        name = "shared-name" if index % 2 else f"own-name-{index}"
        try:
            barrier.wait(timeout=30)
            for attempt in range(attempts):
                with contextlib.suppress(Unauthenticated):
                    registry.auth.login(name, f"wrong-{attempt}", client_address="192.0.2.1")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert not errors, errors
    limits = registry.auth.limits
    counts = {(c.scope, c.digest): c.failures for c in rows(registry, select(SignInFailure))}
    assert counts == {
        (NAME, limits.digest(NAME, "shared-name")): attempts * (threads // 2),
        **{(NAME, limits.digest(NAME, f"own-name-{i}")): attempts
           for i in range(0, threads, 2)},
        (ADDRESS, limits.digest(ADDRESS, "192.0.2.1")): attempts * threads,
    }


def test_a_locked_name_answers_423_in_a_real_commit(committed_registry):
    """The refusal is committed (its audit event) without the request's transaction."""
    registry = committed_registry
    for attempt in range(registry.settings.max_failed_logins):
        with pytest.raises(Unauthenticated):
            registry.auth.login("nobody-real", f"wrong-{attempt}")
    with pytest.raises(Locked):
        registry.auth.login("nobody-real", PASSWORD)


# --- token lifetime ------------------------------------------------------------------------


def test_idle_timeout(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    idle = registry.settings.token_idle_minutes
    at(registry, minutes=idle - 1)
    assert client.get("/auth/me", headers=user.headers).status_code == 200
    # That use restarted the idle clock.
    at(registry, minutes=2 * (idle - 1))
    assert client.get("/auth/me", headers=user.headers).status_code == 200
    at(registry, minutes=2 * (idle - 1) + idle)
    response = client.get("/auth/me", headers=user.headers)
    assert response.status_code == 401
    assert error_of(response)["message"] == "sign-in required or expired"


def test_idle_timeout_boundary(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    at(registry, minutes=registry.settings.token_idle_minutes)
    assert client.get("/auth/me", headers=user.headers).status_code == 401
    # Going idle does not lock the account: signing in again works.
    assert sign_in(client, user.username).status_code == 200


def test_absolute_lifetime_even_when_used_all_the_time(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    hours = registry.settings.token_lifetime_hours
    step = registry.settings.token_idle_minutes - 5
    minute = 0
    while minute + step < hours * 60:
        minute += step
        at(registry, minutes=minute)
        assert client.get("/auth/me", headers=user.headers).status_code == 200, minute
    at(registry, hours=hours)
    assert client.get("/auth/me", headers=user.headers).status_code == 401


def test_logout_revokes_only_that_token(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    second = bearer(sign_in(client, user.username).json()["access_token"])
    response = client.post("/auth/logout", headers=user.headers)
    assert response.status_code == 204
    assert client.get("/auth/me", headers=user.headers).status_code == 401
    assert client.get("/auth/me", headers=second).status_code == 200
    # Logging out twice is harmless.
    assert client.post("/auth/logout", headers=user.headers).status_code == 204
    logouts = rows(registry, select(AuditEvent).where(
        AuditEvent.actor == user.username, AuditEvent.action == "logout"))
    assert [e.outcome for e in logouts] == ["ok"]


def test_logout_needs_a_token(registry, client):
    assert client.post("/auth/logout").status_code == 401


# --- disabling -----------------------------------------------------------------------------


def test_disabled_user_cannot_sign_in_and_tokens_stop_working(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    user = make_user(registry, client, "police", COMMUNITY_A)
    assert client.get("/auth/me", headers=user.headers).status_code == 200

    response = client.post(f"/users/{user.username}/disable", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert client.get("/auth/me", headers=user.headers).status_code == 401
    assert client.get("/rentals", headers=user.headers).status_code == 401

    refused = sign_in(client, user.username)
    unknown = sign_in(client, "nobody-at-all")
    assert refused.status_code == 401
    assert error_of(refused) == error_of(unknown)
    assert login_events(registry, user.username)[-1].detail == "disabled"
    listed = {u["username"]: u for u in client.get("/users", headers=admin.headers).json()}
    assert listed[user.username]["disabled"] is True


def test_disabled_user_with_a_wrong_password_is_not_told_it_is_disabled(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    user = make_user(registry, client, "police", COMMUNITY_A)
    client.post(f"/users/{user.username}/disable", headers=admin.headers)
    assert error_of(sign_in(client, user.username, "wrong")) == \
        error_of(sign_in(client, user.username))


# --- rehash on login -----------------------------------------------------------------------


def test_password_rehashed_on_login_when_argon2_parameters_change(registry, client, settings):
    user = make_user(registry, client, "police", COMMUNITY_A)
    old_hash = stored_user(registry, user.username).password_hash
    assert "m=64,t=1,p=1" in old_hash

    stronger = settings.model_copy(update={"argon2_time_cost": 2, "argon2_memory_kib": 128})
    upgraded = Registry(stronger, db=registry.db, keyring=registry.keyring,
                        clock=Clock(fixed=FIXED_NOW))
    # A failed sign-in leaves the hash alone.
    with pytest.raises(Exception, match="wrong username or password"):
        upgraded.auth.login(user.username, "not-the-password")
    assert stored_user(registry, user.username).password_hash == old_hash

    upgraded.auth.login(user.username, PASSWORD)
    new_hash = stored_user(registry, user.username).password_hash
    assert new_hash != old_hash
    assert "m=128,t=2,p=1" in new_hash
    assert upgraded.passwords.verify(new_hash, PASSWORD)
    assert not upgraded.passwords.needs_rehash(new_hash)
    # Same parameters: no rehash on the next login.
    upgraded.auth.login(user.username, PASSWORD)
    assert stored_user(registry, user.username).password_hash == new_hash
    # The old registry still accepts the stronger hash (and moves it back to its own).
    assert sign_in(client, user.username).status_code == 200


def test_passwords_directly(registry):
    passwords = registry.passwords
    stored = passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "x")
    assert not passwords.verify(None, PASSWORD)
    assert not passwords.verify("not-a-hash", PASSWORD)
    assert not passwords.needs_rehash(stored)
    assert passwords.hash(PASSWORD) != stored  # salted


# --- the administrator ---------------------------------------------------------------------


def test_admin_adds_lists_and_disables_users(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    created = client.post("/users", headers=admin.headers, json={
        "username": "new.officer", "password": NEW_PASSWORD, "role": "police",
        "jurisdiction_code": COMMUNITY_B})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["username"] == "new.officer"
    assert body["role"] == "police"
    assert body["jurisdiction_code"] == COMMUNITY_B
    assert body["disabled"] is False and body["locked"] is False
    assert "password" not in body and "password_hash" not in body

    listed = client.get("/users", headers=admin.headers)
    assert listed.status_code == 200
    names = [u["username"] for u in listed.json()]
    assert {"new.officer", admin.username} <= set(names)
    assert names == sorted(names)

    # The administrator chose the first password: the user replaces it before signing in.
    refused = sign_in(client, "new.officer", NEW_PASSWORD)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "password_change_required"
    assert stored_user(registry, "new.officer").must_change_password is True
    assert change_password(client, "new.officer", NEW_PASSWORD).status_code == 204
    assert sign_in(client, "new.officer", CHOSEN_PASSWORD).status_code == 200
    assert client.post("/users/new.officer/disable", headers=admin.headers).status_code == 200
    assert sign_in(client, "new.officer", CHOSEN_PASSWORD).status_code == 401
    actions = set(rows(registry, select(AuditEvent.action).where(
        AuditEvent.actor == admin.username, AuditEvent.kind == "user")))
    assert {"create", "list", "disable"} <= actions


def test_duplicate_username_is_409(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    make_user(registry, client, "police", COMMUNITY_A, username="taken.name")
    response = client.post("/users", headers=admin.headers, json={
        "username": "taken.name", "password": NEW_PASSWORD, "role": "coordinator",
        "jurisdiction_code": GRID_A1})
    assert response.status_code == 409
    assert error_of(response)["field"] == "username"
    # The existing account is untouched.
    assert sign_in(client, "taken.name").status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"username": "ab"}, "username"),
    ({"username": "has space"}, "username"),
    ({"password": "short"}, "password"),
    ({"role": "system"}, "role"),
    ({"role": "superuser"}, "role"),
    ({"jurisdiction_code": "3301"}, "jurisdiction_code"),
    ({"extra": "field"}, "extra"),
])
def test_bad_user_bodies_are_422(registry, client, body, field):
    admin = make_user(registry, client, "admin", COUNTY)
    payload = {"username": "fine.name", "password": NEW_PASSWORD, "role": "police",
               "jurisdiction_code": COMMUNITY_A, **body}
    response = client.post("/users", headers=admin.headers, json=payload)
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    assert NEW_PASSWORD not in response.text


def test_unknown_jurisdiction_is_refused(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    response = client.post("/users", headers=admin.headers, json={
        "username": "fine.name", "password": NEW_PASSWORD, "role": "police",
        "jurisdiction_code": "330199009009"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction_code"


@pytest.mark.parametrize("target", [COMMUNITY_B, COUNTY, "330199001"])
def test_admin_cannot_create_users_outside_their_scope(registry, client, target):
    admin = make_user(registry, client, "admin", COMMUNITY_A)
    response = client.post("/users", headers=admin.headers, json={
        "username": "outsider", "password": NEW_PASSWORD, "role": "police",
        "jurisdiction_code": target})
    assert response.status_code == 422
    assert error_of(response)["field"] == "jurisdiction_code"
    assert "outside your jurisdiction" in error_of(response)["message"]
    assert stored_user(registry, "outsider") is None


def test_admin_sees_and_manages_only_users_in_scope(registry, client):
    admin = make_user(registry, client, "admin", COMMUNITY_A)
    inside = make_user(registry, None, "coordinator", GRID_A1)
    outside = make_user(registry, None, "police", COMMUNITY_B)
    names = {u["username"] for u in client.get("/users", headers=admin.headers).json()}
    assert inside.username in names
    assert outside.username not in names
    assert client.post(f"/users/{outside.username}/disable",
                       headers=admin.headers).status_code == 404
    assert client.post(f"/users/{outside.username}/password", json={"password": NEW_PASSWORD},
                       headers=admin.headers).status_code == 404
    assert client.post("/users/no-such-user/disable", headers=admin.headers).status_code == 404
    assert stored_user(registry, outside.username).disabled is False
    assert client.post(f"/users/{inside.username}/disable",
                       headers=admin.headers).status_code == 200


@pytest.mark.parametrize("role", ["police", "coordinator", "auditor", "leadership"])
def test_only_admins_manage_users(registry, client, role):
    user = make_user(registry, client, role, COUNTY)
    target = make_user(registry, None, "police", COMMUNITY_A)
    assert client.get("/users", headers=user.headers).status_code == 403
    assert client.post("/users", headers=user.headers, json={
        "username": "sneaky", "password": NEW_PASSWORD, "role": "admin",
        "jurisdiction_code": COUNTY}).status_code == 403
    assert client.post(f"/users/{target.username}/disable",
                       headers=user.headers).status_code == 403
    assert client.post(f"/users/{target.username}/password", json={"password": NEW_PASSWORD},
                       headers=user.headers).status_code == 403
    assert stored_user(registry, "sneaky") is None


def test_admin_holds_no_right_to_personal_data(registry, client):
    police = make_user(registry, client, "police", COMMUNITY_A)
    admin = make_user(registry, client, "admin", COUNTY)
    created = client.post("/rentals", json=rental_body(3), headers=police.headers)
    assert created.status_code == 201, created.text
    rental_id = created.json()["id"]
    purpose = {**admin.headers, "X-Purpose": "maintenance"}

    assert client.post("/rentals", json=rental_body(4), headers=admin.headers).status_code == 403
    assert client.get("/rentals", headers=admin.headers).status_code == 403
    assert client.get(f"/rentals?jurisdiction={COMMUNITY_A}",
                      headers=admin.headers).status_code == 403
    assert client.post("/rentals/search", headers=admin.headers, json={
        "landlord_id_number": rental_body(3)["landlord"]["id_number"]}).status_code == 403
    for headers in (admin.headers, purpose):
        response = client.get(f"/rentals/{rental_id}", headers=headers)
        assert response.status_code == 404
        assert "王" not in response.text
    assert client.patch(f"/rentals/{rental_id}", json={"units": 9},
                        headers=admin.headers).status_code == 404
    assert client.post(f"/rentals/{rental_id}/deregister", json={},
                       headers=admin.headers).status_code == 404
    assert client.post(f"/rentals/{rental_id}/pledge", headers=admin.headers, json={
        "signed_on": "2026-06-01", "valid_until": "2027-06-01"}).status_code == 404

    unchanged = client.get(f"/rentals/{rental_id}", headers=police.headers).json()
    assert unchanged["units"] == 2
    assert unchanged["status"] == "active"
    denied = rows(registry, select(AuditEvent).where(
        AuditEvent.actor == admin.username, AuditEvent.kind == "rental"))
    assert denied and all(e.outcome == "denied" for e in denied)


# --- changing one's own password -------------------------------------------------------------


def reset_by_admin(registry, client, username: str, password: str = NEW_PASSWORD) -> None:
    admin = make_user(registry, client, "admin", COUNTY)
    response = client.post(f"/users/{username}/password", json={"password": password},
                           headers=admin.headers)
    assert response.status_code == 200, response.text


def test_sign_in_after_a_reset_is_403_and_issues_no_token(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    assert stored_user(registry, user.username).must_change_password is True
    tokens_before = user_tokens(registry, user)
    assert [t.revoked_at for t in tokens_before] == [FIXED_NOW]  # the reset revoked it

    response = sign_in(client, user.username, NEW_PASSWORD)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "password_change_required"
    assert "/auth/password" in error["message"]
    assert "密码" in error["message_zh"]
    assert "access_token" not in response.text
    assert NEW_PASSWORD not in response.text
    # No token row was written, and the existing ones are as they were.
    after = user_tokens(registry, user)
    assert [(t.token_hash, t.revoked_at) for t in after] == [
        (t.token_hash, t.revoked_at) for t in tokens_before]
    # One audited refusal; it is not a failure, so it does not count towards the lockout.
    event = login_events(registry, user.username)[-1]
    assert (event.kind, event.action, event.outcome) == ("session", "login", "change-required")
    assert event.actor_id == user.actor.id
    assert event.jurisdiction_code == COMMUNITY_A
    assert NEW_PASSWORD not in event.detail
    stored = stored_user(registry, user.username)
    assert failures(registry, user.username) == 0 and stored.must_change_password is True


def test_a_flagged_account_with_a_wrong_password_is_an_ordinary_401(registry, client):
    """Only the right password learns that a change is required."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    wrong = sign_in(client, user.username, "not-the-password")
    unknown = sign_in(client, "nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong) == error_of(unknown)
    assert failures(registry, user.username) == 1


def test_repeated_sign_ins_before_the_change_keep_answering_403(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    for _ in range(registry.settings.max_failed_logins + 1):
        assert sign_in(client, user.username, NEW_PASSWORD).status_code == 403
    assert locked_until(registry, user.username) is None
    assert user_tokens(registry, user) == []


def test_who_must_change_their_password(registry, client):
    """Accounts the CLI operator or the code adds are usable at once; one added with
    must_change_password=True, or by an administrator over the API, is not."""
    plain = make_user(registry, None, "police", COMMUNITY_A)
    assert stored_user(registry, plain.username).must_change_password is False
    assert sign_in(client, plain.username).status_code == 200
    with registry.vault(system_actor("tests")) as vault:
        vault.users.add(username="flagged.user", password=PASSWORD, role="police",
                        jurisdiction_code=COMMUNITY_A, must_change_password=True)
        vault.commit()
    assert sign_in(client, "flagged.user").status_code == 403
    admin = make_user(registry, client, "admin", COUNTY)
    created = client.post("/users", headers=admin.headers, json={
        "username": "api.user", "password": NEW_PASSWORD, "role": "police",
        "jurisdiction_code": COMMUNITY_B})
    assert created.status_code == 201, created.text
    assert stored_user(registry, "api.user").must_change_password is True
    assert error_of(sign_in(client, "api.user", NEW_PASSWORD))["code"] == (
        "password_change_required")


def test_the_change_after_a_reset_end_to_end(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    old_hash = stored_user(registry, user.username).password_hash

    response = change_password(client, user.username, NEW_PASSWORD)
    assert response.status_code == 204, response.text
    assert response.content == b""
    stored = stored_user(registry, user.username)
    assert stored.must_change_password is False
    assert stored.password_hash != old_hash
    assert stored.password_hash.startswith("$argon2id$")
    assert CHOSEN_PASSWORD not in stored.password_hash

    signed_in = sign_in(client, user.username, CHOSEN_PASSWORD)
    assert signed_in.status_code == 200
    me = client.get("/auth/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == user.username
    [event] = change_events(registry, user.username)
    assert (event.kind, event.outcome, event.detail) == ("session", "ok", "")
    assert event.actor_id == user.actor.id
    assert event.jurisdiction_code == COMMUNITY_A
    assert [e.outcome for e in login_events(registry, user.username)] == ["ok", "ok"]


def test_the_admin_chosen_password_stops_working_after_the_change(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    assert change_password(client, user.username, NEW_PASSWORD).status_code == 204
    for old in (NEW_PASSWORD, PASSWORD):
        refused = sign_in(client, user.username, old)
        assert refused.status_code == 401
        assert error_of(refused)["message"] == "wrong username or password"
        # Nor can whoever knows it change the password again with it.
        assert change_password(client, user.username, old, "yet-another-passphrase"
                               ).status_code == 401
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200
    assert [e.outcome for e in login_events(registry, user.username)] == [
        "denied", "denied", "ok"]
    assert [e.outcome for e in change_events(registry, user.username)] == [
        "ok", "denied", "denied"]


def test_the_change_is_audited_in_order(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    assert sign_in(client, user.username, NEW_PASSWORD).status_code == 403
    assert change_password(client, user.username, NEW_PASSWORD).status_code == 204
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200
    events = rows(registry, select(AuditEvent).where(
        AuditEvent.actor == user.username, AuditEvent.kind == "session"
    ).order_by(AuditEvent.seq))
    assert [(e.action, e.outcome) for e in events] == [
        ("login", "change-required"), ("password-change", "ok"), ("login", "ok")]
    for event in events:
        for secret in (NEW_PASSWORD, CHOSEN_PASSWORD):
            assert secret not in event.detail


def test_a_user_can_change_their_password_without_being_asked(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    assert stored_user(registry, user.username).must_change_password is False
    response = change_password(client, user.username, PASSWORD)
    assert response.status_code == 204, response.text
    assert stored_user(registry, user.username).must_change_password is False
    assert sign_in(client, user.username, PASSWORD).status_code == 401
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200
    assert [e.outcome for e in change_events(registry, user.username)] == ["ok"]


def test_the_change_revokes_every_token_of_that_user_only(registry, client):
    user = make_user(registry, client, "police", COMMUNITY_A)
    second = bearer(sign_in(client, user.username).json()["access_token"])
    other = make_user(registry, client, "police", COMMUNITY_A)
    at(registry, minutes=5)
    assert client.get("/auth/me", headers=user.headers).status_code == 200
    assert change_password(client, user.username, PASSWORD).status_code == 204
    for headers in (user.headers, second):
        response = client.get("/auth/me", headers=headers)
        assert response.status_code == 401
        assert client.post("/rentals", json=rental_body(7), headers=headers).status_code == 401
    revoked = [t.revoked_at for t in user_tokens(registry, user)]
    assert len(revoked) == 2
    assert all(r is not None and r.replace(tzinfo=None) == (
        FIXED_NOW + timedelta(minutes=5)).replace(tzinfo=None) for r in revoked)
    # Someone else's session is untouched.
    assert client.get("/auth/me", headers=other.headers).status_code == 200
    assert [t.revoked_at for t in user_tokens(registry, other)] == [None]


def test_the_username_is_case_insensitive_for_the_change_too(registry, client):
    make_user(registry, None, "police", COMMUNITY_A, username="officer.wu")
    assert change_password(client, "Officer.WU", PASSWORD).status_code == 204
    assert sign_in(client, "officer.wu", CHOSEN_PASSWORD).status_code == 200


@pytest.mark.parametrize("failing_with", ["change", "sign-in", "both"])
def test_wrong_current_password_counts_towards_the_lockout(registry, client, failing_with):
    """A wrong current password on /auth/password is a failed sign-in: the same counter, the
    same lock, for /auth/token and /auth/password alike."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    old_hash = stored_user(registry, user.username).password_hash
    limit = registry.settings.max_failed_logins
    for attempt in range(limit):
        use_change = failing_with == "change" or (failing_with == "both" and attempt % 2 == 0)
        response = (change_password(client, user.username, f"wrong-{attempt}")
                    if use_change else sign_in(client, user.username, f"wrong-{attempt}"))
        assert response.status_code == 401, (attempt, response.text)
        assert error_of(response)["message"] == "wrong username or password"
        if attempt < limit - 1:
            assert failures(registry, user.username) == attempt + 1
            assert locked_until(registry, user.username) is None
    assert locked_until(registry, user.username) is not None
    assert failures(registry, user.username) == 0

    # Locked: even the right password is refused on both routes, and nothing changes.
    locked = change_password(client, user.username, NEW_PASSWORD)
    assert locked.status_code == 423
    assert error_of(locked)["code"] == "locked"
    assert "locked_until" in error_of(locked)
    assert sign_in(client, user.username, NEW_PASSWORD).status_code == 423
    stored = stored_user(registry, user.username)
    assert stored.password_hash == old_hash and stored.must_change_password is True

    changes = [(e.outcome, e.detail) for e in change_events(registry, user.username)]
    denied = [("denied", "")] * (limit - 1) + [("denied", "locked")]
    if failing_with == "change":
        assert changes == [*denied, ("locked", "")]
    elif failing_with == "sign-in":
        assert changes == [("locked", "")]
    else:
        assert changes[-1] == ("locked", "")
    # The lock ends like any other; then the change goes through.
    at(registry, minutes=registry.settings.lockout_minutes)
    assert change_password(client, user.username, NEW_PASSWORD).status_code == 204
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200


def test_a_successful_change_resets_the_failure_count(registry, client):
    user = make_user(registry, None, "police", COMMUNITY_A)
    limit = registry.settings.max_failed_logins
    for attempt in range(limit - 1):
        assert change_password(client, user.username, f"wrong-{attempt}").status_code == 401
    assert failures(registry, user.username) == limit - 1
    assert change_password(client, user.username, PASSWORD).status_code == 204
    assert name_counter(registry, user.username) is None
    assert sign_in(client, user.username, "wrong").status_code == 401
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200


def test_an_unknown_user_cannot_change_a_password_and_is_locked_like_one(registry, client):
    limit = registry.settings.max_failed_logins
    for attempt in range(limit + 1):
        response = change_password(client, "no-such-user", f"wrong-{attempt}")
        assert response.status_code == (401 if attempt < limit else 423)
    assert change_events(registry, "no-such-user") == []
    [event, *_] = change_events(registry, unknown_actor(registry, "no-such-user"))
    assert event.outcome == "denied" and event.actor_id is None
    assert stored_user(registry, "no-such-user") is None


@pytest.mark.parametrize("flagged", [True, False], ids=["after-reset", "voluntary"])
def test_the_new_password_must_differ_from_the_current_one(registry, client, flagged):
    user = make_user(registry, None, "police", COMMUNITY_A)
    current = PASSWORD
    if flagged:
        reset_by_admin(registry, client, user.username)
        current = NEW_PASSWORD
    before = stored_user(registry, user.username)
    events_before = change_events(registry, user.username)
    response = change_password(client, user.username, current, current)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "new_password"
    assert error["code"] == "invalid"
    assert current not in response.text
    after = stored_user(registry, user.username)
    assert (after.password_hash, after.must_change_password) == (
        before.password_hash, before.must_change_password)
    assert failures(registry, user.username) == 0
    assert change_events(registry, user.username) == events_before
    # Still the old state: a flagged account still must change, an unflagged still signs in.
    assert sign_in(client, user.username, current).status_code == (403 if flagged else 200)


def test_a_disabled_user_cannot_change_their_password(registry, client):
    admin = make_user(registry, client, "admin", COUNTY)
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    assert client.post(f"/users/{user.username}/disable",
                       headers=admin.headers).status_code == 200
    before = stored_user(registry, user.username)
    refused = change_password(client, user.username, NEW_PASSWORD)
    unknown = change_password(client, "nobody-at-all", NEW_PASSWORD)
    assert refused.status_code == unknown.status_code == 401
    assert error_of(refused) == error_of(unknown)
    after = stored_user(registry, user.username)
    assert after.password_hash == before.password_hash
    assert after.must_change_password is True and after.disabled is True
    [event] = change_events(registry, user.username)
    assert (event.outcome, event.detail) == ("denied", "disabled")
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"username": None}, "username"),
    ({"password": None}, "password"),
    ({"new_password": None}, "new_password"),
    ({"new_password": "short-pw1"}, "new_password"),
    ({"new_password": "x" * 257}, "new_password"),
    ({"password": ""}, "password"),
    ({"username": ""}, "username"),
    ({"username": "a\x00b"}, "username"),
    ({"username": "x" * 65}, "username"),
    ({"new_password": 1234567890123}, "new_password"),
    ({"extra": "field"}, "extra"),
], ids=["no-username", "no-password", "no-new-password", "short-new", "long-new",
        "empty-password", "empty-username", "nul-username", "long-username", "number",
        "extra"])
def test_bad_password_change_bodies_are_422(registry, client, body, field):
    user = make_user(registry, None, "police", COMMUNITY_A)
    reset_by_admin(registry, client, user.username)
    payload = {"username": user.username, "password": NEW_PASSWORD,
               "new_password": CHOSEN_PASSWORD, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    before = stored_user(registry, user.username)
    response = client.post("/auth/password", json=payload)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field
    assert NEW_PASSWORD not in response.text and CHOSEN_PASSWORD not in response.text
    after = stored_user(registry, user.username)
    assert (after.password_hash, after.must_change_password) == (before.password_hash, True)
    assert failures(registry, user.username) == 0
    assert change_events(registry, user.username) == []


def test_the_change_needs_no_token_and_ignores_one(registry, client):
    """Public: the flagged user has no token. A token of someone else changes nothing about
    whose password is changed."""
    user = make_user(registry, None, "police", COMMUNITY_A)
    other = make_user(registry, client, "police", COMMUNITY_A)
    response = client.post("/auth/password", headers=other.headers, json={
        "username": user.username, "password": PASSWORD, "new_password": CHOSEN_PASSWORD})
    assert response.status_code == 204
    assert sign_in(client, user.username, CHOSEN_PASSWORD).status_code == 200
    assert sign_in(client, other.username).status_code == 200


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch) -> Path:
    """An initialised on-disk registry in tmp_path, with the test jurisdiction tree."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"REGISTRY_DATA_DIR": str(tmp_path), "REGISTRY_ENVIRONMENT": "test",
                        "REGISTRY_ARGON2_TIME_COST": "1",
                        "REGISTRY_ARGON2_MEMORY_KIB": "64"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REGISTRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("REGISTRY_KEY_FILE", raising=False)
    get_settings.cache_clear()
    result = run("init")
    assert result.exit_code == 0, result.output
    tree = tmp_path / "tree.csv"
    tree.write_text("code,name,parent_code\n"
                    + "".join(f"{c},{n},{p or ''}\n" for c, n, p in TREE), encoding="utf-8")
    loaded = run("jurisdictions", "load", str(tree))
    assert loaded.exit_code == 0, loaded.output
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str, input: str | None = None):
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), input=input)
    finally:
        get_settings.cache_clear()


def cli_registry() -> Registry:
    get_settings.cache_clear()
    return Registry(get_settings())


def cli_users() -> dict[str, list[str]]:
    result = run("users", "list")
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line}


def test_cli_init_creates_a_private_key_file_and_a_database(cli_env):
    key = cli_env / "registry.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (cli_env / "registry.sqlite3").exists()
    again = run("init")
    assert again.exit_code == 0, again.output
    assert "keeping it" in again.output


def test_cli_users_add_list_and_sign_in(cli_env):
    result = run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
                 input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert f"added alice (police, {COMMUNITY_A})" in result.output
    assert NEW_PASSWORD not in result.output
    assert cli_users()["alice"] == ["police", COMMUNITY_A, "active"]

    registry = cli_registry()
    # The operator's own accounts are not flagged: alice signs in straight away.
    token, _ = registry.auth.login("alice", NEW_PASSWORD)
    assert registry.auth.authenticate(token).role == "police"


def test_cli_users_add_refusals(cli_env):
    ok = run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
             input=NEW_PASSWORD + "\n")
    assert ok.exit_code == 0, ok.output
    duplicate = run("users", "add", "alice", "--role", "coordinator", "--jurisdiction", GRID_A1,
                    input=NEW_PASSWORD + "\n")
    assert duplicate.exit_code == 2
    assert "taken" in duplicate.output
    short = run("users", "add", "bob", "--role", "police", "--jurisdiction", COMMUNITY_A,
                input="short\n")
    assert short.exit_code == 2
    assert "password" in short.output
    unknown_place = run("users", "add", "bob", "--role", "police", "--jurisdiction",
                        "330199009009", input=NEW_PASSWORD + "\n")
    assert unknown_place.exit_code == 2
    assert "jurisdiction" in unknown_place.output
    bad_role = run("users", "add", "bob", "--role", "system", "--jurisdiction", COMMUNITY_A,
                   input=NEW_PASSWORD + "\n")
    assert bad_role.exit_code == 2
    assert set(cli_users()) == {"alice"}


def test_cli_disable_without_yes_is_a_dry_run(cli_env):
    run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
        input=NEW_PASSWORD + "\n")
    registry = cli_registry()
    token, _ = registry.auth.login("alice", NEW_PASSWORD)

    dry = run("users", "disable", "alice")
    assert "would disable alice" in dry.output
    assert "--yes" in dry.output
    assert cli_users()["alice"][-1] == "active"
    assert registry.auth.authenticate(token).username == "alice"

    real = run("users", "disable", "alice", "--yes")
    assert real.exit_code == 0, real.output
    assert "disabled alice" in real.output
    assert cli_users()["alice"][-1] == "disabled"
    with pytest.raises(Exception, match="sign-in required or expired"):
        registry.auth.authenticate(token)
    with pytest.raises(Exception, match="wrong username or password"):
        registry.auth.login("alice", NEW_PASSWORD)


def test_cli_disable_unknown_user(cli_env):
    result = run("users", "disable", "nobody", "--yes")
    assert result.exit_code == 2
    assert "not found" in result.output


def test_cli_reset_password_unlocks(cli_env):
    run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
        input=NEW_PASSWORD + "\n")
    registry = cli_registry()
    for attempt in range(registry.settings.max_failed_logins):
        with pytest.raises(Exception, match="wrong username or password"):
            registry.auth.login("alice", f"wrong-{attempt}")
    assert cli_users()["alice"][-1] == "locked"

    result = run("users", "reset-password", "alice", input="another-good-password\n")
    assert result.exit_code == 0, result.output
    assert "password reset for alice" in result.output
    assert cli_users()["alice"][-1] == "active"
    # The operator chose it: signing in with it is refused until alice picks her own.
    with pytest.raises(PasswordChangeRequired):
        registry.auth.login("alice", "another-good-password")
    with pytest.raises(Exception, match="wrong username or password"):
        registry.auth.login("alice", NEW_PASSWORD)
    registry.auth.change_password("alice", "another-good-password", CHOSEN_PASSWORD)
    token, _ = registry.auth.login("alice", CHOSEN_PASSWORD)
    assert registry.auth.authenticate(token).username == "alice"
    for old in ("another-good-password", NEW_PASSWORD):
        with pytest.raises(Exception, match="wrong username or password"):
            registry.auth.login("alice", old)


def test_cli_reset_password_refusals(cli_env):
    run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
        input=NEW_PASSWORD + "\n")
    short = run("users", "reset-password", "alice", input="short\n")
    assert short.exit_code == 2
    assert "10 to 256" in short.output
    unknown = run("users", "reset-password", "nobody", input="another-good-password\n")
    assert unknown.exit_code == 2
    cli_registry().auth.login("alice", NEW_PASSWORD)


def test_cli_reset_password_is_usable_through_the_api(cli_env):
    run("users", "add", "alice", "--role", "police", "--jurisdiction", COMMUNITY_A,
        input=NEW_PASSWORD + "\n")
    spaced = "  spaced out password  "
    result = run("users", "reset-password", "alice", input=spaced + "\n")
    assert result.exit_code == 0, result.output
    with TestClient(create_app(cli_registry())) as client:
        assert sign_in(client, "alice", spaced).status_code == 403
        assert sign_in(client, "alice", spaced.strip()).status_code == 401
        # Both passwords are taken exactly as typed, spaces and all.
        chosen = "  " + CHOSEN_PASSWORD + "  "
        assert change_password(client, "alice", spaced, chosen).status_code == 204
        assert sign_in(client, "alice", CHOSEN_PASSWORD).status_code == 401
        assert sign_in(client, "alice", chosen).status_code == 200
        assert sign_in(client, "alice", spaced).status_code == 401


def test_cli_commands_need_an_initialised_registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGISTRY_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "test")
    monkeypatch.delenv("REGISTRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("REGISTRY_KEY_FILE", raising=False)
    result = run("users", "list")
    assert result.exit_code == 2
    assert "registry init" in result.output
