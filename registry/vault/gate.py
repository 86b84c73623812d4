"""The gate: the only code that touches personal-data tables.

Routes, services, importers and CLI commands never hold a database session; they get a
:class:`Vault` built for an authenticated :class:`Actor`. Every operation on personal data goes
authorise → load → decrypt → mask → audit, and returns a read schema, never a table row:

* **Deny by default, scope by jurisdiction.** casbin decides (role, kind, action); the record's
  jurisdiction code must start with the actor's scope. A record that is absent, out of scope,
  or of a kind the role may not read answers :class:`NotFound` — existence does not leak.
* **Field masking.** The policy names, per role, which field groups come clear, masked or not
  at all. Clear fields need a stated purpose; without one they come masked.
* **Audit.** Successful operations buffer one event each, appended to the chain in the same
  transaction just before commit (:meth:`Vault.commit`); nothing lands unaudited. A denial rolls
  the transaction back and commits its own event alone, so it survives the failed request.
* **Exceptions to scope** (:mod:`registry.vault.access`): a restricted person's records are
  hidden like absent ones from everyone not named; a break-glass grant opens one record outside
  scope for reading. Both live here, in :meth:`Store.load` and the stores' SQL, and every read
  they let through is flagged in its audit event (:meth:`Vault.flag`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from registry.errors import Forbidden, NotFound, RegistryError, Unreadable
from registry.security import audit
from registry.security.authz import View, in_scope
from registry.security.crypto import Ciphertext, CryptoError, key_id_of
from registry.vault.access import AccessStore
from registry.vault.accounts import UserStore
from registry.vault.auditlog import AuditStore
from registry.vault.backups import BackupAdmin
from registry.vault.base import Actor, Kind
from registry.vault.coordinators import CoordinatorStore
from registry.vault.corrections import CorrectionsStore
from registry.vault.indexadmin import IndexAdmin, live_versions
from registry.vault.jurisdictions import JurisdictionStore
from registry.vault.keyadmin import KeyAdmin
from registry.vault.ledgers import Ledgers
from registry.vault.metrics import MetricsStore
from registry.vault.persons import PersonStore
from registry.vault.releases import ReleaseStore
from registry.vault.rentals import RentalStore
from registry.vault.residents import ResidentStore
from registry.vault.retention import RetentionStore

if TYPE_CHECKING:
    from registry.vault.runtime import Registry

T = TypeVar("T")


class Vault:
    def __init__(
        self, registry: Registry, session: Session, actor: Actor, request_id: str | None = None
    ) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.clock = registry.clock
        self.actor = actor
        self.request_id = request_id
        self._session = session
        self._keys: dict[uuid.UUID, bytes] = {}
        self._events: list[audit.Event] = []
        self._audit_enabled = not registry.settings.bench_plaintext
        self._batch = False
        self._flags: dict[str, list[str]] = {}
        self.access = AccessStore(self)
        self.persons = PersonStore(self)
        self.jurisdictions = JurisdictionStore(self)
        self.rentals = RentalStore(self)
        self.residents = ResidentStore(self)
        self.corrections = CorrectionsStore(self)
        self.releases = ReleaseStore(self)
        self.coordinators = CoordinatorStore(self)
        self.users = UserStore(self)
        self.audit = AuditStore(self)
        self.ledgers = Ledgers(self)
        self.metrics = MetricsStore(self)
        self.keys = KeyAdmin(self)
        self.indexes = IndexAdmin(self)
        self._index_versions: tuple[object, tuple[int, ...]] | None = None
        self.retention = RetentionStore(self)
        self.backups = BackupAdmin(self)

    @property
    def session(self) -> Session:
        return self._session

    # --- decisions -------------------------------------------------------------------------

    def allowed(self, kind: Kind, action: str) -> bool:
        return self.registry.policy.allows(self.actor.role, kind.name, action)

    def require(self, kind: Kind, action: str) -> None:
        """A collection-level action (create, list, search): a role without it gets 403,
        audited. Record-level refusals go through :meth:`hide` instead."""
        if not self.allowed(kind, action):
            raise self.forbid(kind, action)

    def visible(self, kind: Kind, action: str, jurisdiction_code: str | None) -> bool:
        return self.allowed(kind, action) and in_scope(self.actor.scope, jurisdiction_code)

    def hide(self, kind: Kind, action: str, record_id: object, code: str | None = None):
        """Refuse a record-level action as if the record did not exist (404), audited."""
        self._refuse(kind, action, record_id, code)
        return NotFound.of(kind.label, kind.label_zh)

    def forbid(self, kind: Kind, action: str, record_id: object = None,
               code: str | None = None) -> Forbidden:
        """Refuse an action the role lacks (403), audited: for collections, and for records
        the caller may already read."""
        self._refuse(kind, action, record_id, code)
        return Forbidden(f"your role may not {action} {kind.label} records",
                         f"您的角色无权对{kind.label_zh}执行此操作")

    def refuse(self, kind: Kind, action: str, error: RegistryError, *, record_id: object = None,
               code: str | None = None) -> RegistryError:
        """Refuse with ``error`` (say, a 422 for a code outside the caller's area), audited as
        a denial like :meth:`hide` and :meth:`forbid`."""
        self._refuse(kind, action, record_id, code)
        return error

    def scope_filter(self, column) -> ColumnElement[bool]:
        return column.startswith(self.actor.scope, autoescape=True)

    def views(self, kind: Kind, groups: Iterable[str], purpose: str | None) -> dict[str, View]:
        """Per field group: clear, masked or hidden. Without a purpose, clear becomes masked."""
        result = {}
        for group in groups:
            view = self.registry.policy.view(self.actor.role, kind.name, group)
            if view is View.clear and not purpose:
                view = View.masked
            result[group] = view
        return result

    # --- crypto ----------------------------------------------------------------------------

    def new_key(self) -> uuid.UUID:
        return self.registry.keyring.new_data_key(self._session, self._keys)

    def new_keys(self, count: int) -> list[uuid.UUID]:
        return self.registry.keyring.new_data_keys(self._session, count, self._keys)

    def forget_keys(self) -> None:
        """Drop the cached data keys (a batch importer, between batches: memory stays flat;
        they are loaded again when needed)."""
        self._keys.clear()

    def load_keys(self, key_ids: Iterable[uuid.UUID]) -> None:
        self.registry.keyring.load_data_keys(self._session, key_ids, self._keys)

    def seal(self, key_id: uuid.UUID, table: str, column: str, row_id: uuid.UUID,
             value: str | None) -> Ciphertext | None:
        if value is None:
            return None
        if key_id not in self._keys:
            self.load_keys([key_id])
        return self.registry.keyring.seal(key_id, self._keys[key_id], table, column, row_id,
                                          value)

    def sealer(self, key_id: uuid.UUID):
        """``seal(table, column, row_id, value)`` under one loaded data key (batch writes)."""
        return self.registry.keyring.sealer(key_id, self._keys[key_id])

    def open(self, ciphertext: bytes | None, table: str, column: str,
             row_id: uuid.UUID) -> str | None:
        if ciphertext is None:
            return None
        key_id = key_id_of(ciphertext)
        if key_id not in self._keys:  # lists load keys in batches beforehand; this is the rest
            self.load_keys([key_id])
        try:
            return self.registry.keyring.open(ciphertext, self._keys, table, column, row_id)
        except CryptoError as exc:
            raise Unreadable(
                "this record's personal data cannot be opened: its data key was destroyed "
                "(erased under the retention rules) or the stored value was altered",
                "该记录的个人数据无法解密：其数据密钥已按保存期限销毁，或存储内容被篡改") from exc

    def _live_index_versions(self) -> tuple[int, ...]:
        """The index-root versions in use, read once per transaction (and on PostgreSQL under
        the rotation's shared lock until it ends: see :mod:`registry.vault.indexadmin`)."""
        state = self._index_versions
        if state is not None and state[0] is self._session.get_transaction():
            return state[1]
        versions = live_versions(self)
        self._index_versions = (self._session.get_transaction(), versions)
        return versions

    def blind_index(self, table: str, column: str, normalised: str) -> int:
        """The blind index to store: under the newest index-root version in use."""
        version = self._live_index_versions()[-1]
        return self.registry.keyring.index.of(version)(table, column, normalised)

    def blind_indexes(self, table: str, column: str, normalised: str) -> list[int]:
        """The buckets to look in: one per index-root version in use — two while a rebuild
        is under way, when a row may be indexed under either."""
        index = self.registry.keyring.index
        return sorted({index.of(version)(table, column, normalised)
                       for version in self._live_index_versions()})

    # --- audit and the transaction ---------------------------------------------------------

    def record(self, kind: Kind, action: str, *, record_id: object = None,
               code: str | None = None, fields: Iterable[str] = (), refs: Iterable[str] = (),
               purpose: str | None = None, detail: str = "", outcome: str = "ok") -> None:
        if not self._audit_enabled:
            return
        if record_id is not None and str(record_id) in self._flags:
            detail = ";".join(filter(None, (detail, *self._flags[str(record_id)])))
        self._events.append(audit.Event(
            actor_id=self.actor.id, actor=self.actor.username, role=self.actor.role,
            action=action, kind=kind.name, outcome=outcome,
            record_id=str(record_id) if record_id is not None else None,
            jurisdiction_code=code or self.actor.scope or None, fields=list(fields),
            refs=list(refs), purpose=purpose,
            detail=detail, request_id=self.request_id, at=self.clock.now(),
        ))

    def flag(self, record_id: object, flag: str) -> None:
        """Mark every later audit event about ``record_id`` (its detail carries ``flag``): a
        read by break-glass or past a restriction says so wherever it is recorded."""
        flags = self._flags.setdefault(str(record_id), [])
        if flag not in flags:
            flags.append(flag)

    def _refuse(self, kind: Kind, action: str, record_id: object, code: str | None) -> None:
        if self._batch:  # the denial lands with the batch, which goes on without the row
            self.record(kind, action, record_id=record_id, code=code, outcome="denied")
            return
        self._session.rollback()
        self._events.clear()
        self.record(kind, action, record_id=record_id, code=code, outcome="denied")
        self.commit()

    # --- batches (importers) ---------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run a batch of rows in this transaction: a refused row is rejected alone (see
        :meth:`attempt`), its denial recorded with the batch instead of rolling it back."""
        self._batch = True
        try:
            yield
        finally:
            self._batch = False

    def attempt(self, operation: Callable[[], T]) -> T:
        """One row of a batch, all or nothing: if it raises a :class:`RegistryError`, its
        writes and audit events are undone (a savepoint) except the denials it caused."""
        mark = len(self._events)
        savepoint = self._session.begin_nested()
        try:
            result = operation()
            savepoint.commit()
            return result
        except RegistryError:
            savepoint.rollback()
            self._events[mark:] = [e for e in self._events[mark:] if e.outcome == "denied"]
            raise

    def flush(self) -> None:
        """Write buffered audit events into the current transaction (batch importers call
        this; :meth:`commit` does it for everyone else)."""
        if self._events:
            audit.append(self._session, self._events, checkpoints=self.registry.checkpoints)
            self._events.clear()

    def commit(self) -> None:
        self.flush()
        self._session.commit()

    def rollback(self) -> None:
        self._events.clear()
        self._session.rollback()
