"""The running registry: settings, database, keys, policy, clock — built once per process.
Its constructor is the start-up check: a missing, unreadable or wrong key file, or an
unmigrated database, stops it with a clear message before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import inspect

from registry.clock import Clock
from registry.config import Settings
from registry.db import KEYSTORE, Database, keystore_file, sqlite_file
from registry.errors import SetupError
from registry.security import audit
from registry.security.authz import Policy
from registry.security.keys import Keyring
from registry.security.passwords import Passwords
from registry.vault.access import seal_legacy_grants
from registry.vault.accounts import Authenticator
from registry.vault.base import Actor
from registry.vault.gate import Vault


class Registry:
    def __init__(self, settings: Settings, *, db: Database | None = None,
                 keyring: Keyring | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.clock.tz = ZoneInfo(settings.timezone)
        self.keyring = keyring or Keyring.from_settings(settings)
        if db is None:
            path = sqlite_file(settings.resolved_database_url)
            if path is not None and not path.exists():
                raise _not_initialised()
            db = Database.from_url(settings.resolved_database_url)
        self.db = db
        self.policy = Policy(settings.policy_dir)
        self.passwords = Passwords(settings)
        self.auth = Authenticator(self)
        self.checkpoints = audit.Checkpointer(
            self.keyring.provider.checkpoint_key(), every_events=settings.audit_checkpoint_events,
            every=timedelta(minutes=settings.audit_checkpoint_minutes))
        self._check_database()

    def _check_database(self) -> None:
        with self.db.session() as session:
            inspector = inspect(session.connection())
            if not inspector.has_table("audit_head"):
                raise _not_initialised()
            if not inspector.has_table("data_key", schema=KEYSTORE):
                raise _keystore_missing(self.settings)
            # The first start against a database records the key check values; every later
            # start compares against them.
            self.keyring.check(session, record=True)
            # Break-glass reasons written in the clear before they were sealed (a migration
            # cannot reach the key provider): sealed now, once.
            seal_legacy_grants(session, self.keyring, self.checkpoints)
            session.commit()

    @contextmanager
    def vault(self, actor: Actor, *, request_id: str | None = None) -> Iterator[Vault]:
        """A vault over one unit of work; it rolls back unless :meth:`Vault.commit` is called."""
        with self.db.session() as session:
            yield Vault(self, session, actor, request_id)


def _keystore_missing(settings: Settings) -> SetupError:
    where = keystore_file(settings.resolved_database_url) or "the schema `keystore`"
    return SetupError(
        f"the keystore (the wrapped data keys) is missing: {where}. Restore it from its backup "
        "— without it no personal data can be read; if the database predates the keystore, "
        "run `registry db upgrade`",
        f"密钥库（加密的数据密钥）缺失：{where}。请从其备份恢复——没有它任何个人数据都无法读取；"
        "若数据库早于密钥库版本，请运行 `registry db upgrade`")


def _not_initialised() -> SetupError:
    return SetupError("the database is not initialised; run `registry init` "
                      "(or `registry db upgrade`)",
                      "数据库尚未初始化，请运行 `registry init`（或 `registry db upgrade`）")
