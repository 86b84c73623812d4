"""Key administration behind the gate: the status of the key-encryption key (KEK) versions,
rotation (re-wrapping every data key under a new version, online and resumable), and the
retirement of versions nothing refers to. Every step is an audit event; none touches personal
data, which stays sealed under the same data keys throughout."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from registry.keys.schemas import KekVersion, KeyStatus
from registry.models import DataKey
from registry.vault.base import KEY, Store


class KeyAdmin(Store):
    kind = KEY

    @property
    def keyring(self):
        return self.vault.registry.keyring

    def status(self) -> KeyStatus:
        self.vault.require(KEY, "read")
        provider = self.keyring.provider
        usage = self.keyring.usage(self.session)
        destroyed = self.session.scalar(select(func.count()).select_from(DataKey).where(
            DataKey.wrapped.is_(None))) or 0
        versions = [KekVersion(kek_id=v, active=v == provider.active_kek_id,
                               data_keys=usage.get(v, 0)) for v in provider.kek_ids()]
        missing = sorted(set(usage) - {v.kek_id for v in versions})
        self.vault.record(KEY, "read")
        return KeyStatus(active=provider.active_kek_id, versions=versions,
                         stale=sum(n for v, n in usage.items() if v != provider.active_kek_id),
                         destroyed=destroyed, missing=missing,
                         index_fingerprint=self.keyring.index.fingerprint(),
                         index=self.vault.indexes.report())

    def begin_rotation(self) -> tuple[str, int, bool]:
        """A new KEK version — unless a rotation is still under way (data keys under an older
        version), which is resumed instead. Returns (active version, keys to re-wrap,
        resumed)."""
        self.vault.require(KEY, "rotate")
        pending = self.keyring.stale(self.session)
        resumed = pending > 0
        if not resumed:
            self.keyring.provider.new_kek()  # durable before anything is wrapped under it
            self.keyring.check(self.session, record=True)
            pending = self.keyring.stale(self.session)
        active = self.keyring.provider.active_kek_id
        self.vault.record(KEY, "rotate", record_id=active,
                          detail=f"{'resumed' if resumed else 'started'};pending={pending}")
        return active, pending, resumed

    @property
    def batch_pause(self) -> float:
        """Seconds to leave the keystore alone between two batches. On SQLite a batch holds
        the keystore file's write lock while it re-wraps, and a request storing new data keys
        waits for it; without a gap the rotation would retake the lock at once and such
        requests would wait until it ends. Their busy handler retries within 100 ms, so a
        100 ms gap lets them in."""
        return 0.1 if self.vault.registry.db.sqlite else 0.0

    def stale(self) -> int:
        """Live data keys still under an older version (no audit event: a count, not data)."""
        self.vault.require(KEY, "rotate")
        return self.keyring.stale(self.session)

    def rewrap(self, limit: int, after: uuid.UUID | None = None) -> tuple[int, uuid.UUID | None]:
        """One batch of the rotation, from ``after`` in id order (the caller commits it with
        its audit event, and passes the returned id to the next batch)."""
        self.vault.require(KEY, "rotate")
        count, last = self.keyring.rewrap(self.session, limit, after)
        if count:
            self.vault.record(KEY, "rewrap", record_id=self.keyring.provider.active_kek_id,
                              detail=f"rewrapped={count}")
        return count, last

    def retire(self) -> list[str]:
        """Retire every KEK version no live data key refers to (not the active one): their
        check values go in this transaction; :meth:`destroy` removes them from the provider
        after it commits."""
        self.vault.require(KEY, "retire")
        versions = self.keyring.retirable(self.session)
        for version in versions:
            self.vault.record(KEY, "retire", record_id=version)
        return versions

    def destroy(self, versions: list[str]) -> None:
        for version in versions:
            self.keyring.provider.retire_kek(version)
