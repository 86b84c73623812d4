"""Blind-index key rotation behind the gate: a new index-root version, every blind index rebuilt
under it (online, in batches, resumable), then the old version retired.

**One column, two roots while a rebuild runs.** Each blind index stays one column; a rebuild
overwrites it row by row. A row is indexed under the old root until its batch commits and under
the new one after, and nothing says which — nor needs to: every lookup already decrypts the
candidates of its bucket and compares, so looking in the buckets of *every* live version at
once (``bidx IN (h_old, h_new)``, :meth:`Vault.blind_indexes`) finds the row either way, and a
bucket of the other root only adds candidates that fail the comparison. A second column would
double the indexes and every write while buying nothing a lookup needs. Writes use the newest
live version (:meth:`Vault.blind_index`); uniqueness checks (a rental's address, a person's ID
number) are lookups and so see both roots; the bulk importer learns the buckets of both.

**The database says which versions are live.** The key check holds a fingerprint per live
version (``index`` for version 1, ``index:<n>`` after; :mod:`registry.security.keys`), and a row
``reindex:<table>`` per indexed table records the rebuild: the version it builds, the last row
id done (batches go in id order), rows done, whether it finished. A restart — after a SIGKILL,
say — reads them and goes on. Every transaction that computes a blind index first reads the
live versions (:func:`live_versions`); on PostgreSQL it holds a shared advisory lock while it
does, and starting or retiring a version takes that lock exclusively, so no transaction that
saw only the old root is still running when the first row moves to the new one (on SQLite
every transaction holds the write lock anyway). A process that meets a version its key
provider does not hold yet reloads the key file (or the token) and checks the fingerprint.

**Order of durability.** A new root is written to the key provider before the database records
it (an unrecorded newest version is adopted by the next start of a rotation, not made again); a
retired one leaves the database first, and the provider after that commits (a crash in
between is finished by retiring again). The rebuild decrypts values in memory only to compute
their HMAC; nothing it reads leaves this module, and each batch is an audit event naming its
table, its id range and its counts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, insert, select, update

from registry.db import execute_many
from registry.errors import Unavailable, Unreadable
from registry.keys.schemas import IndexRebuild, IndexStatus, IndexVersion
from registry.models import KeyCheck, Person, RentalProperty, Residency
from registry.security.crypto import CryptoError
from registry.security.keys import index_check_name, index_checks
from registry.validation import address_key
from registry.vault.base import KEY, Store

if TYPE_CHECKING:
    from registry.vault.gate import Vault

# The advisory lock (two-int form: a key space apart from the persons' bucket locks) that
# orders lookups against the start and the retirement of an index-root version.
ROTATION_LOCK = (0x72656769, 0x62696478)
STATE = "reindex:"


def _same(value: str) -> str:
    return value


@dataclass(frozen=True)
class Indexed:
    """A table's blind indexes: (index column, sealed column it indexes, normaliser)."""

    model: type
    columns: tuple[tuple[str, str, object], ...]

    @property
    def table(self) -> str:
        return self.model.__tablename__


# Every blind index, with the normalisation its writers apply (see persons, rentals, residents).
INDEXED = (
    Indexed(Person, (("id_bidx", "id_number", _same),)),
    Indexed(RentalProperty, (("address_bidx", "address", address_key),
                             ("landlord_phone_bidx", "landlord_phone", _same))),
    Indexed(Residency, (("phone_bidx", "phone", _same),)),
)


@dataclass
class Progress:
    """A table's rebuild, as stored in its ``reindex:<table>`` row."""

    version: int
    after: uuid.UUID | None = None
    done: int = 0
    unreadable: int = 0
    finished: bool = False

    def dump(self) -> bytes:
        return json.dumps({"version": self.version, "after": self.after and self.after.hex,
                           "done": self.done, "unreadable": self.unreadable,
                           "finished": self.finished}).encode()

    @classmethod
    def load(cls, value: bytes) -> Progress:
        body = json.loads(bytes(value))
        after = body.get("after")
        return cls(version=int(body["version"]), after=uuid.UUID(after) if after else None,
                   done=int(body.get("done", 0)), unreadable=int(body.get("unreadable", 0)),
                   finished=bool(body.get("finished")))


def live_versions(vault: Vault, *, exclusive: bool = False) -> tuple[int, ...]:
    """The index-root versions the data is indexed under, oldest first (the last is the one
    to write with), each checked against its fingerprint. On PostgreSQL the rotation lock is
    held (shared, or ``exclusive`` to change them) until the transaction ends."""
    session = vault.session
    if not vault.registry.db.sqlite:
        lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
        session.execute(select(lock(*ROTATION_LOCK)))
    checks = index_checks(dict(session.execute(
        select(KeyCheck.name, KeyCheck.value).where(KeyCheck.name.startswith("index"))).all()))
    index = vault.registry.keyring.index
    if not checks:  # a database whose first start has not recorded its key check yet
        return (max(index.versions()),)
    for version, fingerprint in checks.items():
        try:
            matches = index.of(version).fingerprint().encode() == fingerprint
        except CryptoError as exc:
            raise Unavailable(
                f"the blind indexes use index key version {version}, which this process's key "
                "provider lacks (is the key file the one `registry keys rotate-index` updated?)",
                f"盲索引使用第 {version} 版索引密钥，但本进程的密钥提供方中没有"
                "（密钥文件是否为 `registry keys rotate-index` 更新后的文件？）") from exc
        if not matches:
            raise Unavailable(
                f"index key version {version} in the key provider does not match this database "
                "(wrong key file?)", f"密钥提供方中的第 {version} 版索引密钥与本数据库不匹配"
                "（密钥文件错误？）")
    index.forget(set(checks))
    return tuple(sorted(checks))


class IndexAdmin(Store):
    kind = KEY

    @property
    def keyring(self):
        return self.vault.registry.keyring

    # --- state -----------------------------------------------------------------------------

    def _progress(self) -> dict[str, Progress]:
        rows = self.session.execute(select(KeyCheck.name, KeyCheck.value).where(
            KeyCheck.name.startswith(STATE))).all()
        return {name[len(STATE):]: Progress.load(value) for name, value in rows}

    def _save(self, table: str, progress: Progress) -> None:
        self.session.execute(update(KeyCheck).where(KeyCheck.name == STATE + table)
                             .values(value=progress.dump()))

    def _under_way(self, live: tuple[int, ...], progress: dict[str, Progress]) -> bool:
        """A rebuild to the newest live version has tables left to do."""
        return len(live) > 1 and any(
            (p := progress.get(i.table)) is None or p.version != live[-1] or not p.finished
            for i in INDEXED)

    def _rows(self, indexed: Indexed, after: uuid.UUID | None = None) -> int:
        query = select(func.count()).select_from(indexed.model)
        if after is not None:
            query = query.where(indexed.model.id > after)
        return self.session.scalar(query) or 0

    # --- status ----------------------------------------------------------------------------

    def report(self) -> IndexStatus:
        """The index-root versions and the rebuild's progress (the caller audits the read)."""
        live = live_versions(self.vault)
        progress = self._progress()
        held = set(self.keyring.index.versions())
        versions = [IndexVersion(version=v, active=v == live[-1], in_use=v in live,
                                 held=v in held) for v in sorted(held | set(live))]
        rebuild = []
        for indexed in INDEXED:
            p = progress.get(indexed.table)
            if p is None:
                continue
            rows = self._rows(indexed)
            left = 0 if p.finished else self._rows(indexed, p.after)
            rebuild.append(IndexRebuild(table=indexed.table, version=p.version,
                                        rows=rows, left=left, finished=p.finished,
                                        unreadable=p.unreadable))
        return IndexStatus(active=live[-1], versions=versions,
                           rebuilding=self._under_way(live, progress), rebuild=rebuild)

    # --- rotation ----------------------------------------------------------------------------

    def begin_rotation(self) -> tuple[int, int, bool]:
        """A new index-root version and a rebuild under it — unless a rebuild is still under
        way, which is resumed instead. Returns (version, rows to rebuild, resumed)."""
        self.vault.require(KEY, "rotate")
        live = live_versions(self.vault, exclusive=True)
        progress = self._progress()
        resumed = self._under_way(live, progress)
        if resumed:
            version = live[-1]
        else:
            index = self.keyring.index
            newest = max(index.versions())
            # A version made by a start that crashed before the database recorded it is
            # adopted; otherwise a new one, durable in the provider before anything uses it.
            version = newest if newest > live[-1] else self.keyring.provider.new_index_root()
            self.session.execute(insert(KeyCheck), [{
                "name": index_check_name(version),
                "value": index.of(version).fingerprint().encode()}])
            self.session.execute(delete(KeyCheck).where(KeyCheck.name.startswith(STATE)))
            self.session.execute(insert(KeyCheck), [
                {"name": STATE + i.table, "value": Progress(version).dump()} for i in INDEXED])
            progress = self._progress()
        pending = sum(self._rows(i, progress[i.table].after) for i in INDEXED
                      if not progress[i.table].finished)
        self.vault.record(KEY, "rotate-index", record_id=f"index:{version}",
                          detail=f"{'resumed' if resumed else 'started'};pending={pending}")
        return version, pending, resumed

    def tables(self) -> list[str]:
        """The tables the rebuild has left, in the order it goes (no audit event: names)."""
        self.vault.require(KEY, "rotate")
        live = live_versions(self.vault)
        progress = self._progress()
        return [i.table for i in INDEXED if (p := progress.get(i.table)) is not None
                and p.version == live[-1] and not p.finished]

    def rebuild(self, table: str, limit: int) -> tuple[int, bool]:
        """One batch of the rebuild of ``table``: up to ``limit`` rows after the last one done,
        in id order, their indexes recomputed under the newest version from the decrypted
        values. Returns (rows rebuilt, table finished); the caller commits, with the batch's
        audit event. The batch's rows are locked until then (PostgreSQL; SQLite's writers take
        turns anyway), so a concurrent write to one lands before they are read or after their
        new indexes — and it writes under the newest version itself."""
        self.vault.require(KEY, "rotate")
        indexed = next(i for i in INDEXED if i.table == table)
        live = live_versions(self.vault)
        progress = self._progress().get(table)
        if progress is None or progress.finished or progress.version != live[-1]:
            return 0, True
        model = indexed.model
        sealed = [c for _, c, _ in indexed.columns]
        query = (select(model.id, model.key_id, *(getattr(model, c) for c in sealed))
                 .order_by(model.id).limit(limit).with_for_update())
        if progress.after is not None:
            query = query.where(model.id > progress.after)
        rows = self.session.execute(query).all()
        self.vault.load_keys(r.key_id for r in rows)
        index = self.keyring.index.of(live[-1])
        updates, unreadable = [], 0
        for row in rows:
            values = {"b_id": row.id}
            try:
                for bidx, column, normalise in indexed.columns:
                    stored = getattr(row, column)
                    plain = self.vault.open(stored, table, column, row.id)
                    values[f"b_{bidx}"] = (None if plain is None
                                           else index(table, column, normalise(plain)))
            except Unreadable:  # its data key was destroyed: nothing left to find it by
                unreadable += 1
                continue
            updates.append(values)
        execute_many(self.session, _statement(indexed), updates)
        first = progress.after
        progress.after = rows[-1].id if rows else progress.after
        progress.done += len(updates)
        progress.unreadable += unreadable
        progress.finished = len(rows) < limit
        self._save(table, progress)
        if rows:
            self.vault.record(KEY, "reindex", record_id=f"index:{live[-1]}", detail=(
                f"table={table};rebuilt={len(updates)};unreadable={unreadable};"
                f"after={first or ''};last={progress.after}"))
        return len(rows), progress.finished

    # --- retirement --------------------------------------------------------------------------

    def retire(self) -> list[int]:
        """Retire the versions older than the newest once the rebuild under it has finished:
        their check values and the rebuild's record go in this transaction; :meth:`destroy`
        removes them from the provider after it commits. Nothing while a rebuild is under way
        (the rows not yet rebuilt still refer to the old version)."""
        self.vault.require(KEY, "retire")
        live = live_versions(self.vault, exclusive=True)
        progress = self._progress()
        if self._under_way(live, progress):
            return []
        versions = list(live[:-1])
        if versions:
            self.session.execute(delete(KeyCheck).where(
                KeyCheck.name.in_([index_check_name(v) for v in versions])))
        self.session.execute(delete(KeyCheck).where(KeyCheck.name.startswith(STATE)))
        for version in versions:
            self.vault.record(KEY, "retire-index", record_id=f"index:{version}")
        return versions

    def under_way(self) -> bool:
        """Whether a rebuild has rows left (no audit event: a yes or no about keys)."""
        self.vault.require(KEY, "read")
        live = live_versions(self.vault)
        return self._under_way(live, self._progress())

    def destroy(self, versions: list[int]) -> None:
        """Remove retired versions from the provider — and any older one a retirement
        interrupted after its commit left there."""
        live = set(live_versions(self.vault))
        newest = max(live)
        stale = {v for v in self.keyring.index.versions() if v < newest and v not in live}
        for version in sorted(set(versions) | stale):
            self.keyring.provider.retire_index_root(version)
        self.keyring.index.forget(live)


def _statement(indexed: Indexed):
    """One row's new indexes."""
    table = indexed.model.__table__
    return update(table).where(table.c.id == bindparam("b_id")).values(**{
        bidx: bindparam(f"b_{bidx}", type_=table.c[bidx].type)
        for bidx, _, _ in indexed.columns})
