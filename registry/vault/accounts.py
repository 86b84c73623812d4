"""Accounts and sign-in.

Passwords are argon2id hashes; bearer tokens are 256 random bits handed out once and stored
only as their SHA-256, with an idle timeout and an absolute lifetime. Repeated failed sign-ins
lock the account for a while; every sign-in, failure and lockout is an audit event. The
administrator manages accounts but holds no right to personal data.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from registry.accounts.schemas import UserRead
from registry.errors import Conflict, Invalid, Locked, PasswordChangeRequired, Unauthenticated
from registry.models import AuthToken, UserAccount
from registry.models._types import new_id
from registry.security import audit
from registry.vault.base import USER, Actor, Store

if TYPE_CHECKING:
    from registry.vault.runtime import Registry

_BAD_LOGIN = Unauthenticated("wrong username or password", "用户名或密码错误")
_BAD_TOKEN = Unauthenticated("sign-in required or expired", "未登录或登录已过期")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _read(user: UserAccount, now: datetime) -> UserRead:
    locked_until = user.locked_until
    return UserRead(id=user.id, username=user.username, role=user.role,
                    jurisdiction_code=user.jurisdiction_code, disabled=user.disabled,
                    locked=bool(locked_until and locked_until > now))


class UserStore(Store):
    def add(self, *, username: str, password: str, role: str, jurisdiction_code: str,
            must_change_password: bool = False) -> UserRead:
        """A new account; ``must_change_password`` when someone other than its user chose the
        password (an administrator over the API), so only the user can sign in with it."""
        vault = self.vault
        vault.require(USER, "manage")
        vault.jurisdictions.require_writable(jurisdiction_code, USER)
        username = username.lower()  # one account per name, whatever the case
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
        return _read(user, now)

    def list(self) -> list[UserRead]:
        self.vault.require(USER, "manage")
        now = self.vault.clock.now()
        users = self.session.scalars(
            select(UserAccount).where(self.vault.scope_filter(UserAccount.jurisdiction_code))
            .order_by(UserAccount.username)
        ).all()
        self.vault.record(USER, "list", refs=[f"user:{u.id}" for u in users])
        return [_read(u, now) for u in users]

    def _find(self, username: str, action: str) -> UserAccount:
        self.vault.require(USER, "manage")
        user = self.session.scalar(
            select(UserAccount).where(UserAccount.username == username.lower()))
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
        return _read(user, self.vault.clock.now())

    def reset_password(self, username: str, password: str) -> UserRead:
        user = self._find(username, "reset-password")
        user.password_hash = self.vault.registry.passwords.hash(password)
        user.must_change_password = True  # the user, not whoever reset it, chooses the next
        user.failed_logins = 0
        user.locked_until = None
        self.session.execute(update(AuthToken).where(
            AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None)
        ).values(revoked_at=self.vault.clock.now()))
        self.vault.record(USER, "reset-password", record_id=user.id,
                          code=user.jurisdiction_code, fields=["password"])
        return _read(user, self.vault.clock.now())


class Authenticator:
    """Sign-in, tokens, sign-out. Works before there is an actor, so it has its own sessions."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = registry.settings

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
                        request_id: str | None) -> UserAccount:
        """The account, if the password is right and the account usable; otherwise a refusal
        that counts towards the lockout and is audited (in its own commit)."""
        now = self.registry.clock.now()
        user = session.scalar(
            select(UserAccount).where(UserAccount.username == username.lower()))
        locked_until = user.locked_until if user else None
        if user is not None and locked_until and locked_until > now:
            self._log(session, self._event(user, username, action, "locked", request_id=request_id))
            session.commit()
            raise Locked("account locked after repeated failed sign-ins; try again later",
                         "连续登录失败，账户已暂时锁定，请稍后再试",
                         extra={"locked_until": locked_until.isoformat()})
        good = self.registry.passwords.verify(user.password_hash if user else None, password)
        if not good or user is None or user.disabled:
            detail = ""
            if user is not None and not good:
                user.failed_logins += 1
                if user.failed_logins >= self.settings.max_failed_logins:
                    user.locked_until = now + timedelta(minutes=self.settings.lockout_minutes)
                    user.failed_logins = 0
                    detail = "locked"
            elif user is not None:
                detail = "disabled"
            self._log(session, self._event(user, username, action, "denied", detail, request_id))
            session.commit()
            raise _BAD_LOGIN
        user.failed_logins = 0
        user.locked_until = None
        return user

    def login(self, username: str, password: str, *, request_id: str | None = None
              ) -> tuple[str, datetime]:
        now = self.registry.clock.now()
        passwords = self.registry.passwords
        with self.registry.db.session() as session:
            user = self._check_password(session, username, password, "login", request_id)
            if user.must_change_password:
                # Set by an administrator: whoever set it must not be able to sign in with it.
                self._log(session, self._event(user, username, "login", "change-required",
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
            self._log(session, self._event(user, username, "login", "ok", request_id=request_id))
            session.commit()
            return token, expires

    def change_password(self, username: str, password: str, new_password: str, *,
                        request_id: str | None = None) -> None:
        """The user's own change, with the current password (counted like a sign-in);
        revokes the user's tokens."""
        if new_password == password:
            raise Invalid("must differ from the current password", "新密码不能与当前密码相同",
                          field="new_password")
        with self.registry.db.session() as session:
            user = self._check_password(session, username, password, "password-change",
                                        request_id)
            user.password_hash = self.registry.passwords.hash(new_password)
            user.must_change_password = False
            session.execute(update(AuthToken).where(
                AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None)
            ).values(revoked_at=self.registry.clock.now()))
            self._log(session, self._event(user, username, "password-change", "ok",
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

