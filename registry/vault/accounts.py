"""Accounts and sign-in.

Passwords are argon2id hashes; bearer tokens are 256 random bits handed out once and stored
only as their SHA-256, with an idle timeout and an absolute lifetime. The administrator manages
accounts but holds no right to personal data.

Sign-in must not tell anyone which usernames exist. A wrong password and an unknown name get
the same 401 after the same argon2 work (a dummy hash stands in for the missing account), and
the lockout counts failures per normalised name whether or not an account has it: after
``max_failed_logins`` the name answers 423 for ``lockout_minutes`` either way, with the same
body. Failures are also counted per client address, when the caller knows it: past
``sign_in_address_failures`` in a window, 429 with Retry-After, whatever the name. Counters live
in ``sign_in_failure`` under an HMAC of the name or address (:class:`SignInLimits`), so the
table holds neither what people typed nor where from; the audit event of a failure names an
unknown name by the same HMAC, never in the clear. Every sign-in, failure, lockout and
throttled attempt is an audit event.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.accounts.schemas import UserRead
from registry.errors import (
    Conflict,
    Invalid,
    Locked,
    PasswordChangeRequired,
    TooManyAttempts,
    Unauthenticated,
)
from registry.models import AuthToken, SignInFailure, UserAccount
from registry.models._types import new_id
from registry.security import audit
from registry.vault.base import USER, Actor, Store

if TYPE_CHECKING:
    from registry.vault.runtime import Registry

_BAD_LOGIN = Unauthenticated("wrong username or password", "用户名或密码错误")
_BAD_TOKEN = Unauthenticated("sign-in required or expired", "未登录或登录已过期")


NAME, ADDRESS = "name", "address"
# Expired counters dropped per failure: more than a failure adds, so the table stays small.
_PRUNE_BATCH = 500


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise(username: str) -> str:
    """The one form of a username: what accounts are stored, looked up and counted under."""
    return username.strip().lower()


def _seconds(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _read(user: UserAccount, *, locked: bool) -> UserRead:
    return UserRead(id=user.id, username=user.username, role=user.role,
                    jurisdiction_code=user.jurisdiction_code, disabled=user.disabled,
                    locked=locked)


class SignInLimits:
    """Failure counters per normalised username and per client address, each row named by an
    HMAC whose key is derived from the key provider's active index root — so a database dump
    alone cannot test a guessed name against the table. (After ``registry keys rotate-index``
    the counters start afresh, and unknown names in later audit events hash differently.)
    Rows are locked for the update (``FOR UPDATE`` on PostgreSQL; SQLite's transactions are
    serial), always name before address, so concurrent failures neither lose a count nor
    deadlock; pruning skips rows another transaction holds."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = registry.settings

    def digest(self, scope: str, value: str) -> str:
        root = self.registry.keyring.provider.index_root()
        key = hmac.digest(root, b"registry-sign-in-failures/v1", "sha256")
        message = f"{scope}\0{value}".encode("utf-8", "surrogatepass")
        return hmac.new(key, message, "sha256").hexdigest()

    def refused_until(self, session: Session, scope: str, digest: str,
                      now: datetime) -> datetime | None:
        """When the lockout (a name) or throttle (an address) in force ends; None if none."""
        until = session.scalar(select(SignInFailure.locked_until).where(
            SignInFailure.scope == scope, SignInFailure.digest == digest))
        return until if until is not None and until > now else None

    def locked_names(self, session: Session, usernames: Iterable[str],
                     now: datetime) -> set[str]:
        """Which of these (account) names are locked now."""
        by_digest = {self.digest(NAME, normalise(name)): name for name in usernames}
        if not by_digest:
            return set()
        locked = session.scalars(select(SignInFailure.digest).where(
            SignInFailure.scope == NAME, SignInFailure.digest.in_(list(by_digest)),
            SignInFailure.locked_until > now))
        return {by_digest[digest] for digest in locked}

    def fail(self, session: Session, scope: str, digest: str, now: datetime) -> bool:
        """Count one failure; True when it reaches the limit and refusals begin. A name's count
        lasts ``lockout_minutes`` after its latest failure and its lockout as long; an
        address's window is fixed from its first failure and its throttle lasts to the end."""
        if scope == NAME:
            limit = self.settings.max_failed_logins
            window = timedelta(minutes=self.settings.lockout_minutes)
        else:
            limit = self.settings.sign_in_address_failures
            window = timedelta(minutes=self.settings.sign_in_address_minutes)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(SignInFailure).values(
            scope=scope, digest=digest, failures=0, expires_at=now
        ).on_conflict_do_nothing())
        row = session.scalar(
            select(SignInFailure).where(SignInFailure.scope == scope,
                                        SignInFailure.digest == digest)
            .with_for_update().execution_options(populate_existing=True))
        if row.expires_at <= now:  # new, or expired and not yet pruned: start afresh
            row.failures, row.locked_until, row.expires_at = 0, None, now + window
        row.failures += 1
        if scope == NAME:
            row.expires_at = now + window
        reached = row.failures >= limit
        if reached:
            row.failures = 0
            row.locked_until = now + window if scope == NAME else row.expires_at
            row.expires_at = max(row.expires_at, row.locked_until)
        session.flush()
        return reached

    def clear(self, session: Session, scope: str, digest: str) -> None:
        session.execute(delete(SignInFailure).where(
            SignInFailure.scope == scope, SignInFailure.digest == digest))

    def prune(self, session: Session, now: datetime) -> None:
        expired = (select(SignInFailure.scope, SignInFailure.digest)
                   .where(SignInFailure.expires_at <= now).limit(_PRUNE_BATCH)
                   .with_for_update(skip_locked=True))
        session.execute(delete(SignInFailure).where(
            tuple_(SignInFailure.scope, SignInFailure.digest).in_(expired)
        ).execution_options(synchronize_session=False))


class UserStore(Store):
    def add(self, *, username: str, password: str, role: str, jurisdiction_code: str,
            must_change_password: bool = False) -> UserRead:
        """A new account; ``must_change_password`` when someone other than its user chose the
        password (an administrator over the API), so only the user can sign in with it."""
        vault = self.vault
        vault.require(USER, "manage")
        vault.jurisdictions.require_writable(jurisdiction_code, USER)
        username = normalise(username)  # one account per name, whatever the case
        if self.session.scalar(select(UserAccount.id).where(UserAccount.username == username)):
            raise Conflict("this username is taken", "该用户名已被使用", field="username")
        now = vault.clock.now()
        user = UserAccount(id=new_id(), username=username,
                           password_hash=vault.registry.passwords.hash(password), role=role,
                           jurisdiction_code=jurisdiction_code, created_at=now,
                           must_change_password=must_change_password)
        self.session.add(user)
        self.session.flush()
        vault.record(USER, "create", record_id=user.id, code=jurisdiction_code,
                     fields=["username", "role", "jurisdiction_code", "password"])
        return _read(user, locked=self._locked([user], now) != set())

    def _locked(self, users: list[UserAccount], now: datetime) -> set[str]:
        return self.vault.registry.auth.limits.locked_names(
            self.session, [u.username for u in users], now)

    def list(self) -> list[UserRead]:
        self.vault.require(USER, "manage")
        now = self.vault.clock.now()
        users = self.session.scalars(
            select(UserAccount).where(self.vault.scope_filter(UserAccount.jurisdiction_code))
            .order_by(UserAccount.username)
        ).all()
        self.vault.record(USER, "list", refs=[f"user:{u.id}" for u in users])
        locked = self._locked(list(users), now)
        return [_read(u, locked=u.username in locked) for u in users]

    def _find(self, username: str, action: str) -> UserAccount:
        self.vault.require(USER, "manage")
        user = self.session.scalar(
            select(UserAccount).where(UserAccount.username == normalise(username)))
        code = user.jurisdiction_code if user else None
        if user is None or not self.vault.visible(USER, "manage", code):
            raise self.vault.hide(USER, action, user.id if user else None, code)
        return user

    def disable(self, username: str) -> UserRead:
        user = self._find(username, "disable")
        user.disabled = True
        self.session.execute(update(AuthToken).where(
            AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None)
        ).values(revoked_at=self.vault.clock.now()))
        self.vault.record(USER, "disable", record_id=user.id, code=user.jurisdiction_code,
                          fields=["disabled"])
        now = self.vault.clock.now()
        return _read(user, locked=self._locked([user], now) != set())

    def reset_password(self, username: str, password: str) -> UserRead:
        user = self._find(username, "reset-password")
        user.password_hash = self.vault.registry.passwords.hash(password)
        user.must_change_password = True  # the user, not whoever reset it, chooses the next
        limits = self.vault.registry.auth.limits
        limits.clear(self.session, NAME, limits.digest(NAME, user.username))  # unlocks
        self.session.execute(update(AuthToken).where(
            AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None)
        ).values(revoked_at=self.vault.clock.now()))
        self.vault.record(USER, "reset-password", record_id=user.id,
                          code=user.jurisdiction_code, fields=["password"])
        return _read(user, locked=False)


class Authenticator:
    """Sign-in, tokens, sign-out. Works before there is an actor, so it has its own sessions."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.limits = SignInLimits(registry)

    def _log(self, session, event: audit.Event) -> None:
        audit.append(session, [event], checkpoints=self.registry.checkpoints)

    def _event(self, user: UserAccount | None, username: str, action: str, outcome: str,
               detail: str = "", request_id: str | None = None) -> audit.Event:
        return audit.Event(
            actor_id=user.id if user else None, actor=username[:64],
            role=user.role if user else "", action=action, kind="session", outcome=outcome,
            jurisdiction_code=user.jurisdiction_code if user else None,
            record_id=str(user.id) if user else None, detail=detail, request_id=request_id,
            at=self.registry.clock.now(),
        )

    def _check_password(self, session, username: str, password: str, action: str,
                        request_id: str | None, client_address: str | None = None
                        ) -> UserAccount:
        """The account, if the password is right and the account usable; otherwise a refusal
        that counts towards the name's lockout and the address's throttle and is audited (in
        its own commit). Until the password is known right, every step is the same for a name
        with an account and one without: same queries, same argon2 work, same answers."""
        now = self.registry.clock.now()
        limits = self.limits
        name = normalise(username)
        name_digest = limits.digest(NAME, name)
        address_digest = (limits.digest(ADDRESS, client_address)
                          if client_address and self.settings.sign_in_address_failures
                          else None)
        user = session.scalar(select(UserAccount).where(UserAccount.username == name))
        # An unknown name goes into the audit log as its HMAC: what was typed may be a
        # password in the wrong field, or a probe for accounts.
        actor = user.username if user else f"unknown:{name_digest[:32]}"

        def refuse(outcome: str, error: Exception, detail: str = "") -> Exception:
            self._log(session, self._event(user, actor, action, outcome, detail, request_id))
            session.commit()
            return error

        if address_digest is not None:
            until = limits.refused_until(session, ADDRESS, address_digest, now)
            if until is not None:
                raise refuse("throttled", TooManyAttempts(
                    "too many failed sign-ins from this network address; try again later",
                    "该网络地址登录失败次数过多，请稍后再试",
                    extra={"retry_after": _seconds(until, now)}))
        until = limits.refused_until(session, NAME, name_digest, now)
        if until is not None:
            raise refuse("locked", Locked(
                "account locked after repeated failed sign-ins; try again later",
                "连续登录失败，账户已暂时锁定，请稍后再试",
                extra={"locked_until": until.isoformat(), "retry_after": _seconds(until, now)}))
        good = self.registry.passwords.verify(user.password_hash if user else None, password)
        if not good:  # an unknown name is never good
            limits.prune(session, now)
            details = []
            if limits.fail(session, NAME, name_digest, now):
                details.append("locked")
            if address_digest is not None and limits.fail(session, ADDRESS, address_digest,
                                                          now):
                details.append("address-throttled")
            raise refuse("denied", _BAD_LOGIN, ",".join(details))
        if user.disabled:
            raise refuse("denied", _BAD_LOGIN, "disabled")
        limits.clear(session, NAME, name_digest)
        return user

    def login(self, username: str, password: str, *, request_id: str | None = None,
              client_address: str | None = None) -> tuple[str, datetime]:
        """A bearer token and when it expires. ``client_address`` (the request's peer) turns
        on the per-address throttle; without it only the per-name lockout applies."""
        now = self.registry.clock.now()
        passwords = self.registry.passwords
        with self.registry.db.session() as session:
            user = self._check_password(session, username, password, "login", request_id,
                                        client_address)
            if user.must_change_password:
                # Set by an administrator: whoever set it must not be able to sign in with it.
                self._log(session, self._event(user, user.username, "login", "change-required",
                                               request_id=request_id))
                session.commit()
                raise PasswordChangeRequired(
                    "choose a new password first (POST /auth/password)",
                    "请先修改密码（POST /auth/password）")
            if passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash(password)
            token = secrets.token_urlsafe(32)
            expires = now + timedelta(hours=self.settings.token_lifetime_hours)
            session.add(AuthToken(token_hash=_token_hash(token), user_id=user.id, created_at=now,
                                  last_used_at=now, expires_at=expires))
            self._log(session, self._event(user, user.username, "login", "ok",
                                           request_id=request_id))
            session.commit()
            return token, expires

    def change_password(self, username: str, password: str, new_password: str, *,
                        request_id: str | None = None,
                        client_address: str | None = None) -> None:
        """The user's own change, with the current password (counted like a sign-in);
        revokes the user's tokens."""
        if new_password == password:
            raise Invalid("must differ from the current password", "新密码不能与当前密码相同",
                          field="new_password")
        with self.registry.db.session() as session:
            user = self._check_password(session, username, password, "password-change",
                                        request_id, client_address)
            user.password_hash = self.registry.passwords.hash(new_password)
            user.must_change_password = False
            session.execute(update(AuthToken).where(
                AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None)
            ).values(revoked_at=self.registry.clock.now()))
            self._log(session, self._event(user, user.username, "password-change", "ok",
                                           request_id=request_id))
            session.commit()

    def authenticate(self, token: str) -> Actor:
        now = self.registry.clock.now()
        with self.registry.db.session() as session:
            row = session.execute(
                select(AuthToken, UserAccount)
                .join(UserAccount, UserAccount.id == AuthToken.user_id)
                .where(AuthToken.token_hash == _token_hash(token))
            ).first()
            if row is None:
                raise _BAD_TOKEN
            stored, user = row
            idle = timedelta(minutes=self.settings.token_idle_minutes)
            if (stored.revoked_at is not None or user.disabled
                    or stored.expires_at <= now
                    or stored.last_used_at + idle <= now):
                raise _BAD_TOKEN
            # Touch at most once a minute: keeps the idle clock honest without a write per call.
            if now - stored.last_used_at > timedelta(minutes=1):
                stored.last_used_at = now
                session.commit()
            return Actor(id=user.id, username=user.username, role=user.role,
                         scope=user.jurisdiction_code)

    def logout(self, token: str) -> None:
        now = self.registry.clock.now()
        with self.registry.db.session() as session:
            stored = session.get(AuthToken, _token_hash(token))
            if stored is not None and stored.revoked_at is None:
                stored.revoked_at = now
                user = session.get(UserAccount, stored.user_id)
                self._log(session, self._event(user, user.username, "logout", "ok"))
                session.commit()


def system_actor(name: str) -> Actor:
    """The CLI operator: holds the key file, so may manage accounts and reference data, but is
    not a user and has no right to personal data."""
    return Actor(id=None, username=f"cli:{name}"[:64], role="system", scope="")

