"""audit refs index and anomaly reviews

Revision ID: 7f110c0a8650
Revises: 343e957523fc
Create Date: 2026-11-29 21:45:12.498372
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.models._types

revision: str = '7f110c0a8650'
down_revision: str | None = '343e957523fc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As registry.security.audit.touched, frozen here: a migration does not follow later code.
UNINDEXED_KINDS = {"audit"}
CHUNK = 5000


def _touched(kind: str, record_id: str | None, refs: str) -> set[tuple[str, str]]:
    pairs = {tuple(ref.partition(":")[::2]) for ref in refs.split(",") if ref}
    if record_id:
        pairs.add((kind, record_id))
    return {(k, r) for k, r in pairs if k not in UNINDEXED_KINDS and r and len(r) <= 64}


def _backfill(ref_table: sa.Table) -> None:
    """Index the events already in the log, a chunk at a time (a large log stays in memory
    one chunk at a time)."""
    bind = op.get_bind()
    events = sa.table("audit_event", sa.column("seq"), sa.column("kind"),
                      sa.column("record_id"), sa.column("refs"))
    last = 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.seq > last)
                            .order_by(events.c.seq).limit(CHUNK)).all()
        if not rows:
            return
        refs = [{"seq": r.seq, "kind": kind, "record_id": record_id}
                for r in rows for kind, record_id in _touched(r.kind, r.record_id, r.refs)]
        if refs:
            bind.execute(sa.insert(ref_table), refs)
        last = rows[-1].seq


# The index is as append-only as the log it indexes: deleting a row would hide an event
# from the disclosure report.
PG_FUNCTION = """
CREATE FUNCTION audit_ref_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_ref is append-only';
END
$$
"""


def upgrade() -> None:
    ref_table = op.create_table('audit_ref',
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('record_id', 'kind', 'seq', name=op.f('pk_audit_ref'))
    )
    op.create_table('audit_anomaly_review',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('item_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('note', registry.security.sealed.Sealed(), nullable=False),
    sa.Column('reviewed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reviewed_at', registry.models._types.UTCDateTime(timezone=True), nullable=False),
    # key_id names a key in keystore.data_key: no foreign key crosses into the keystore.
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_anomaly_review')),
    sa.UniqueConstraint('item_id', name=op.f('uq_audit_anomaly_review_item_id'))
    )
    with op.batch_alter_table('audit_anomaly_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_anomaly_review_key_id'), ['key_id'], unique=False)
    _backfill(ref_table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER audit_ref_append_only BEFORE UPDATE OR DELETE ON "
                   "audit_ref FOR EACH ROW EXECUTE FUNCTION audit_ref_append_only()")
        op.execute("CREATE TRIGGER audit_ref_no_truncate BEFORE TRUNCATE ON audit_ref "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_ref_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_ref_append_only_{event.lower()} BEFORE {event} "
                       "ON audit_ref BEGIN SELECT RAISE(ABORT, 'audit_ref is append-only'); "
                       "END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_ref_no_truncate ON audit_ref")
        op.execute("DROP TRIGGER audit_ref_append_only ON audit_ref")
        op.execute("DROP FUNCTION audit_ref_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER audit_ref_append_only_{event}")
    with op.batch_alter_table('audit_anomaly_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_anomaly_review_key_id'))
    op.drop_table('audit_anomaly_review')
    op.drop_table('audit_ref')
