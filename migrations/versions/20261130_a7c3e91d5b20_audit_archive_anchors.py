"""audit archive anchors

Revision ID: a7c3e91d5b20
Revises: 13ed179fe4ed
Create Date: 2026-11-30 01:10:00.000000

``audit_anchor``: where the online audit chain starts after an archive
(registry.vault.auditlog). The append-only triggers of ``audit_event`` and ``audit_ref`` now let
a row be deleted only when it lies below the newest anchor — the prefix that anchor says was
archived — and, for events, only when older than 150 days (below the shortest online period the
settings allow, six months): an ordinary UPDATE or DELETE is refused as before, and no anchor
can open recent events. An anchor is accepted only at a signed checkpoint's place with that
checkpoint's hash, just past the anchor before it; anchors are append-only themselves.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types

revision: str = 'a7c3e91d5b20'
down_revision: str | None = '13ed179fe4ed'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Events younger than this are never deleted, whatever an anchor says (the settings' floor is
# six calendar months; the margin covers time zones and month lengths).
FLOOR_DAYS = 150

PG_EVENT = f"""
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq < (SELECT coalesce(max(seq), 0) FROM audit_anchor)
           AND OLD.at < now() - interval '{FLOOR_DAYS} days' THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only';
END
$$
"""
PG_REF = """
CREATE OR REPLACE FUNCTION audit_ref_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq < (SELECT coalesce(max(seq), 0) FROM audit_anchor) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_ref is append-only';
END
$$
"""
PG_EVENT_OLD = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only';
END
$$
"""
PG_REF_OLD = PG_EVENT_OLD.replace("audit_event", "audit_ref")
PG_ANCHOR = """
CREATE FUNCTION audit_anchor_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.seq <> NEW.checkpoint_seq + 1
           OR NEW.prev_hash IS DISTINCT FROM
              (SELECT hash FROM audit_checkpoint WHERE seq = NEW.checkpoint_seq)
           OR NEW.seq <= (SELECT coalesce(max(seq), 1) FROM audit_anchor)
           OR NEW.first_seq <> (SELECT coalesce(max(seq), 1) FROM audit_anchor) THEN
            RAISE EXCEPTION 'audit_anchor: an anchor follows a signed checkpoint with its '
                            'hash, past the anchor before it';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_anchor is append-only';
END
$$
"""
SQLITE_ANCHOR_FITS = """
CREATE TRIGGER audit_anchor_fits BEFORE INSERT ON audit_anchor
WHEN NEW.seq <> NEW.checkpoint_seq + 1
  OR NEW.prev_hash IS NOT (SELECT hash FROM audit_checkpoint WHERE seq = NEW.checkpoint_seq)
  OR NEW.seq <= (SELECT coalesce(max(seq), 1) FROM audit_anchor)
  OR NEW.first_seq <> (SELECT coalesce(max(seq), 1) FROM audit_anchor)
BEGIN SELECT RAISE(ABORT, 'audit_anchor: an anchor follows a signed checkpoint with its hash, \
past the anchor before it'); END
"""
# SQLite stores times as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here), which sorts as text.
SQLITE_EVENT_DELETE = f"""
CREATE TRIGGER audit_event_append_only_delete BEFORE DELETE ON audit_event
WHEN NOT (OLD.seq < (SELECT coalesce(max(seq), 0) FROM audit_anchor)
          AND OLD.at < strftime('%Y-%m-%d %H:%M:%f', 'now', '-{FLOOR_DAYS} days'))
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
"""
SQLITE_REF_DELETE = """
CREATE TRIGGER audit_ref_append_only_delete BEFORE DELETE ON audit_ref
WHEN NOT OLD.seq < (SELECT coalesce(max(seq), 0) FROM audit_anchor)
BEGIN SELECT RAISE(ABORT, 'audit_ref is append-only'); END
"""


def upgrade() -> None:
    op.create_table('audit_anchor',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('checkpoint_seq', sa.BigInteger(), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('archive_id', sa.Uuid(), nullable=False),
    sa.Column('archive_file', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('archived_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('archived_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_seq'], ['audit_checkpoint.seq'],
                            name=op.f('fk_audit_anchor_checkpoint_seq_audit_checkpoint')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_anchor')),
    sa.UniqueConstraint('checkpoint_seq', name=op.f('uq_audit_anchor_checkpoint_seq'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_EVENT)
        op.execute(PG_REF)
        op.execute(PG_ANCHOR)
        op.execute("CREATE TRIGGER audit_anchor_append_only BEFORE INSERT OR UPDATE OR DELETE "
                   "ON audit_anchor FOR EACH ROW EXECUTE FUNCTION audit_anchor_append_only()")
        op.execute("CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_anchor_append_only()")
    else:
        op.execute("DROP TRIGGER audit_event_append_only_delete")
        op.execute(SQLITE_EVENT_DELETE)
        op.execute("DROP TRIGGER audit_ref_append_only_delete")
        op.execute(SQLITE_REF_DELETE)
        op.execute(SQLITE_ANCHOR_FITS)
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_anchor_append_only_{event.lower()} BEFORE "
                       f"{event} ON audit_anchor BEGIN SELECT RAISE(ABORT, "
                       "'audit_anchor is append-only'); END")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM audit_anchor LIMIT 1")).first() is not None:
        raise RuntimeError("the audit log has been archived; the older schema cannot say "
                           "where its online chain starts")
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_anchor_no_truncate ON audit_anchor")
        op.execute("DROP TRIGGER audit_anchor_append_only ON audit_anchor")
        op.execute("DROP FUNCTION audit_anchor_append_only()")
        op.execute(PG_REF_OLD)
        op.execute(PG_EVENT_OLD)
    else:
        for name in ("audit_anchor_append_only_update", "audit_anchor_append_only_delete",
                     "audit_anchor_fits", "audit_ref_append_only_delete",
                     "audit_event_append_only_delete"):
            op.execute(f"DROP TRIGGER {name}")
        for table in ("audit_event", "audit_ref"):
            op.execute(f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
    op.drop_table('audit_anchor')
