"""The keyring: the key provider (KEKs, index root), the configured AEAD, the blind indexer,
and the keystore of wrapped data keys.

Wrapped data keys sit behind this class, apart from the data (the keystore: their own SQLite
file or PostgreSQL schema, on a shorter backup cycle). A data key is written before the data
that needs it: an orphan key is harmless, data without its key is lost. New keys are staged on
the session and stored when it commits, just before the data (:func:`_store_new_data_keys`):
through :func:`registry.db.keystore_writes`, so on SQLite they are committed in a transaction
of their own first, and on PostgreSQL in the same one. A unit of work that rolls back leaves
no key behind.

:meth:`Keyring.check` ties a key file to a database: the first start records a value wrapped
under each KEK and the index root's fingerprint (one per index-root version the data is indexed
under: ``index`` for version 1, ``index:<n>`` after); every later start refuses, with a clear
message and without writing anything, a key file that does not open them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from registry.config import CipherName, Settings
from registry.db import chunks, execute_many, insert_many, keystore_writes
from registry.errors import SetupError
from registry.models import DataKey, KeyCheck
from registry.models._types import new_id
from registry.security.crypto import (
    Algorithm,
    BlindIndexes,
    Ciphertext,
    CryptoError,
    KeyProvider,
    Sealer,
    context,
    key_id_of,
    open_sealed,
    seal,
)
from registry.security.providers import provider_from_settings

_CHECK_PLAINTEXT = b"registry key check v1"
PLAINTEXT_KEY_ID = uuid.UUID(int=0)
_ALGORITHMS = {CipherName.aes_256_gcm: Algorithm.aes_256_gcm, CipherName.sm4_gcm: Algorithm.sm4_gcm}


class Keyring:
    def __init__(self, provider: KeyProvider, settings: Settings) -> None:
        self.provider = provider
        self.algorithm = (
            Algorithm.plaintext if settings.bench_plaintext else _ALGORITHMS[settings.cipher]
        )
        self.index = BlindIndexes(provider, settings.blind_index_bits)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls(provider_from_settings(settings), settings)

    # --- start-up check --------------------------------------------------------------------

    def check(self, session: Session, *, record: bool = False) -> None:
        """Refuse a key file that does not belong to this database. With ``record`` (init, and
        a new KEK version), store check values for keys the database has not seen yet."""
        stored = dict(session.execute(select(KeyCheck.name, KeyCheck.value)).all())
        self.check_index(index_checks(stored))
        referenced = set(session.execute(
            select(DataKey.kek_id).where(DataKey.wrapped.is_not(None)).distinct()).scalars())
        for name in stored:
            if name.startswith("kek:"):
                referenced.add(name[4:])
        provider_keks = set(self.provider.kek_ids())
        for kek_id in sorted(referenced):
            if kek_id not in provider_keks:
                raise SetupError(
                    f"the database needs key-encryption key {kek_id}, which the key file lacks",
                    f"数据库需要主密钥 {kek_id}，但密钥文件中没有",
                )
            value = stored.get(f"kek:{kek_id}")
            if value is not None:
                try:
                    self.provider.unwrap(kek_id, value, aad=b"key-check")
                except CryptoError as exc:
                    raise SetupError(
                        f"key-encryption key {kek_id} in the key file is not the one this "
                        "database was encrypted with (wrong key file?)",
                        f"密钥文件中的主密钥 {kek_id} 不是本数据库使用的密钥（密钥文件错误？）",
                    ) from exc
        if not stored:
            empty = session.execute(select(DataKey.id).limit(1)).first() is None
            if not empty:
                raise SetupError(
                    "the database holds data keys but no key check; refusing to guess",
                    "数据库中有数据密钥但没有密钥校验值，拒绝继续",
                )
        if record:
            rows = []
            if not index_checks(stored):
                version = max(self.index.versions())
                rows.append({"name": index_check_name(version),
                             "value": self.index.of(version).fingerprint().encode()})
            active = self.provider.active_kek_id
            if f"kek:{active}" not in stored:
                _, wrapped = self.provider.wrap(_CHECK_PLAINTEXT, aad=b"key-check")
                rows.append({"name": f"kek:{active}", "value": wrapped})
            if rows:
                session.execute(insert(KeyCheck), rows)

    def check_index(self, checks: dict[int, bytes]) -> None:
        """Every index-root version the database records must be in the provider, with the
        recorded fingerprint."""
        held = set(self.index.versions())
        for version, fingerprint in sorted(checks.items()):
            if version not in held:
                raise SetupError(
                    f"the database needs index key version {version}, which the key file lacks",
                    f"数据库需要第 {version} 版索引密钥，但密钥文件中没有")
            if self.index.of(version).fingerprint().encode() != fingerprint:
                raise SetupError(
                    "the key file's index key does not match this database (wrong key file?)"
                    + ("" if version == 1 else f" (version {version})"),
                    "密钥文件的索引密钥与本数据库不匹配（密钥文件错误？）"
                    + ("" if version == 1 else f"（第 {version} 版）"))

    # --- data keys -------------------------------------------------------------------------

    def new_data_key(self, session: Session, cache: dict[uuid.UUID, bytes]) -> uuid.UUID:
        if self.algorithm is Algorithm.plaintext:
            return self._plaintext_key(session, cache)
        key_id = new_id()
        dek = os.urandom(32)
        kek_id, wrapped = self.provider.wrap(dek, aad=key_id.bytes)
        _stage(session, [{"id": key_id, "kek_id": kek_id, "wrapped": wrapped,
                          "created_at": datetime.now(UTC)}])
        cache[key_id] = dek
        return key_id

    def new_data_keys(self, session: Session, count: int,
                      cache: dict[uuid.UUID, bytes]) -> list[uuid.UUID]:
        """``count`` new data keys in one statement (batch importers)."""
        if self.algorithm is Algorithm.plaintext:
            return [self._plaintext_key(session, cache)] * count
        now, rows = datetime.now(UTC), []
        for _ in range(count):
            key_id, dek = new_id(), os.urandom(32)
            kek_id, wrapped = self.provider.wrap(dek, aad=key_id.bytes)
            rows.append({"id": key_id, "kek_id": kek_id, "wrapped": wrapped, "created_at": now})
            cache[key_id] = dek
        _stage(session, rows)
        return [row["id"] for row in rows]

    def _plaintext_key(self, session: Session, cache: dict[uuid.UUID, bytes]) -> uuid.UUID:
        """Benchmarks' plaintext path: every row refers to one shared, empty key row."""
        if PLAINTEXT_KEY_ID not in cache:
            if session.get(DataKey, PLAINTEXT_KEY_ID) is None:
                _stage(session, [{"id": PLAINTEXT_KEY_ID, "kek_id": "plaintext",
                                  "wrapped": None, "created_at": datetime.now(UTC)}])
            cache[PLAINTEXT_KEY_ID] = b""
        return PLAINTEXT_KEY_ID

    def load_data_keys(
        self, session: Session, key_ids: Iterable[uuid.UUID], cache: dict[uuid.UUID, bytes]
    ) -> None:
        missing = {k for k in key_ids if k not in cache}
        if self.algorithm is Algorithm.plaintext:
            cache.update(dict.fromkeys(missing, b""))
            return
        if not missing:
            return
        for chunk in chunks(sorted(missing), 500):
            rows = session.execute(
                select(DataKey.id, DataKey.kek_id, DataKey.wrapped).where(DataKey.id.in_(chunk))
            ).all()
            for key_id, kek_id, wrapped in rows:
                if wrapped is not None:
                    cache[key_id] = self.provider.unwrap(kek_id, wrapped, aad=key_id.bytes)

    # --- rotation ----------------------------------------------------------------------------

    def usage(self, session: Session) -> dict[str, int]:
        """Live (not destroyed) data keys per KEK version."""
        return dict(session.execute(
            select(DataKey.kek_id, func.count()).where(DataKey.wrapped.is_not(None))
            .group_by(DataKey.kek_id)).all())

    def stale(self, session: Session) -> int:
        """Live data keys still wrapped under a version other than the active one."""
        return session.scalar(select(func.count()).select_from(DataKey).where(
            DataKey.wrapped.is_not(None), DataKey.kek_id != self.provider.active_kek_id)) or 0

    def rewrap(self, session: Session, limit: int,
               after: uuid.UUID | None = None) -> tuple[int, uuid.UUID | None]:
        """Re-wrap up to ``limit`` data keys (in id order, from ``after``) under the active KEK
        version; the data they seal is untouched. Returns how many, and the last id to go on
        from. Each row is updated only if it still holds what was read (a concurrent rotation
        or erasure wins), so running it from two places, or again after a crash, is safe. On
        SQLite the batch is read and written in a keystore transaction of its own, so the data
        file stays unlocked meanwhile."""
        active = self.provider.active_kek_id
        query = (select(DataKey.id, DataKey.kek_id, DataKey.wrapped)
                 .where(DataKey.wrapped.is_not(None), DataKey.kek_id != active)
                 .order_by(DataKey.id).limit(limit))
        if after is not None:
            query = query.where(DataKey.id > after)
        with keystore_writes(session) as conn:
            rows = conn.execute(query).all()
            updates = []
            for key_id, kek_id, wrapped in rows:
                dek = self.provider.unwrap(kek_id, wrapped, aad=key_id.bytes)
                new_kek, rewrapped = self.provider.wrap(dek, aad=key_id.bytes)
                updates.append({"b_id": key_id, "b_old": kek_id, "b_kek": new_kek,
                                "b_wrapped": rewrapped})
            execute_many(conn, _REWRAP, updates)
        return len(rows), rows[-1].id if rows else after

    def destroy(self, session: Session, key_ids: list[uuid.UUID], when: datetime) -> int:
        """Crypto-shred: overwrite the wrapped bytes of live keys among ``key_ids`` (the row
        stays, as a marker). Call it once the rows sealed under them are gone for good — on
        SQLite it commits at once, in a keystore transaction of its own. Returns how many."""
        destroyed = 0
        with keystore_writes(session) as conn:
            for chunk in chunks(sorted(set(key_ids)), 500):
                destroyed += conn.execute(
                    update(DataKey).where(DataKey.id.in_(chunk), DataKey.wrapped.is_not(None))
                    .values(wrapped=None, destroyed_at=when)).rowcount
        return destroyed

    def retirable(self, session: Session) -> list[str]:
        """KEK versions no live data key refers to, apart from the active one; their check
        values are removed here (the caller commits, then destroys them in the provider —
        in that order, so a crash in between never leaves the database needing a key)."""
        usage = self.usage(session)
        versions = [v for v in self.provider.kek_ids()
                    if v != self.provider.active_kek_id and not usage.get(v)]
        if versions:
            session.execute(delete(KeyCheck).where(
                KeyCheck.name.in_([f"kek:{v}" for v in versions])))
        return versions

    # --- sealing ---------------------------------------------------------------------------

    def seal(
        self, key_id: uuid.UUID, dek: bytes, table: str, column: str, row_id: uuid.UUID,
        value: str,
    ) -> Ciphertext:
        return seal(self.algorithm, key_id, dek, value.encode(),
                    context=context(table, column, row_id))

    def sealer(self, key_id: uuid.UUID, dek: bytes):
        """``seal(table, column, row_id, value)`` under one data key, the cipher set up once."""
        sealer = Sealer(self.algorithm, key_id, dek)

        def seal_value(table: str, column: str, row_id: uuid.UUID, value: str) -> Ciphertext:
            return sealer(value.encode(), context(table, column, row_id))

        return seal_value

    def open(
        self, ciphertext: bytes, cache: dict[uuid.UUID, bytes], table: str, column: str,
        row_id: uuid.UUID,
    ) -> str:
        dek = cache.get(key_id_of(ciphertext))
        if dek is None:
            if self.algorithm is not Algorithm.plaintext:
                raise CryptoError("data key missing or destroyed")
            dek = b""
        return open_sealed(ciphertext, dek, context=context(table, column, row_id),
                           allow_plaintext=self.algorithm is Algorithm.plaintext).decode()


# One re-wrapped key: only if the row still holds the version it was read under, and was not
# destroyed meanwhile (an erasure keeps the row and its version, and must stay final).
_REWRAP = (update(DataKey.__table__)
           .where(DataKey.id == bindparam("b_id"), DataKey.kek_id == bindparam("b_old"),
                  DataKey.wrapped.is_not(None))
           .values(kek_id=bindparam("b_kek"), wrapped=bindparam("b_wrapped")))

# New data keys wait on their session until it commits (see the module docstring).
_STAGED = "registry.staged_data_keys"


def _stage(session: Session, rows: list[dict]) -> None:
    session.info.setdefault(_STAGED, []).extend(rows)


@event.listens_for(Session, "before_commit")
def _store_new_data_keys(session: Session) -> None:
    rows = session.info.pop(_STAGED, None)
    if rows:
        with keystore_writes(session) as conn:
            insert_many(conn, DataKey.__table__, rows)


@event.listens_for(Session, "after_transaction_end")
def _drop_new_data_keys(session: Session, transaction) -> None:
    # The unit of work ended without committing them (rolled back). A savepoint's rollback
    # keeps them: rows staged before it still need theirs, and an unused one is harmless.
    if transaction.parent is None:
        session.info.pop(_STAGED, None)



def index_check_name(version: int) -> str:
    """The key check row of an index-root version (version 1 keeps its original name)."""
    return "index" if version == 1 else f"index:{version}"


def index_checks(stored: dict[str, bytes]) -> dict[int, bytes]:
    """Index-root version → fingerprint, from the key check rows."""
    checks = {}
    for name, value in stored.items():
        if name == "index":
            checks[1] = value
        elif name.startswith("index:") and name[6:].isdigit():
            checks[int(name[6:])] = value
    return checks
